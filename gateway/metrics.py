"""Prometheus metrics of the gateway (base units, no SKU or id labels)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from reservations.actor import BatchReply

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


class Metrics:
    """All series live in their own registry so tests can run several services."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "omnistock_rpc_requests_total",
            "gRPC requests by method and status code",
            ["method", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "omnistock_rpc_duration_seconds",
            "gRPC request latency by method and status code",
            ["method", "code"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.reservations = Counter(
            "omnistock_reservations_total",
            "Reservation outcomes: held, replayed, refused_short, refused_limit, conflict, confirmed,"
            " released, expired, extended, fulfilled, lines_cancelled, returned",
            ["outcome"],
            registry=r,
        )
        self.batch_size = Histogram(
            "omnistock_shard_batch_commands",
            "Commands per shard actor call",
            ["shard"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.shard_call = Histogram(
            "omnistock_shard_call_seconds",
            "Round trip of one shard actor call as seen by the gateway",
            ["shard"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.shard_apply = Histogram(
            "omnistock_shard_apply_seconds",
            "Time a shard spent deciding and applying one batch",
            ["shard"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.journal = Histogram(
            "omnistock_journal_write_seconds",
            "Time to journal one batch in Redis (one round trip)",
            ["shard"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.shard_errors = Counter(
            "omnistock_shard_call_errors_total", "Shard actor calls that failed", ["shard"], registry=r
        )
        self.view_staleness = Gauge(
            "omnistock_view_staleness_seconds",
            "Age of the gateway's network view: time since the oldest shard's last sync",
            registry=r,
        )
        self.view_version = Gauge(
            "omnistock_view_version", "Version of the gateway's network view", registry=r
        )
        self.watchers = Gauge("omnistock_watch_streams", "Open WatchAvailability streams", registry=r)
        self.queued = Gauge(
            "omnistock_gateway_queued_commands", "Commands waiting for a shard call", registry=r
        )
        self._rpc_series: dict[tuple[str, str], tuple[Any, Any]] = {}

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        """One served call. The labelled series are looked up once per (method, code): on
        the hot path labels() costs more than the increment."""
        series = self._rpc_series.get((method, code))
        if series is None:
            series = self._rpc_series[(method, code)] = (
                self.requests.labels(method=method, code=code),
                self.latency.labels(method=method, code=code),
            )
        series[0].inc()
        series[1].observe(seconds)

    def observe_batch(self, shard: int, size: int, reply: BatchReply, seconds: float) -> None:
        label = str(shard)
        self.batch_size.labels(shard=label).observe(size)
        self.shard_call.labels(shard=label).observe(seconds)
        self.shard_apply.labels(shard=label).observe(reply.apply_seconds)
        if reply.journal_seconds > 0:
            self.journal.labels(shard=label).observe(reply.journal_seconds)
        if reply.expired:
            self.reservations.labels(outcome="expired").inc(reply.expired)
