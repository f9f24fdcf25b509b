"""Prometheus metrics of the gateway (base units, no SKU or id labels)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from omnistock.reservations.domain.audit import AuditReport
from omnistock.reservations.domain.stats import HOLD_ENDINGS, ShardStats
from omnistock.reservations.shard.wire import BatchReply

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
HOLD_AGE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 14_400, 86_400)
"""Seconds from hold to confirm, release or expiry (TTLs run 1 s .. 1 day, 900 s by default)."""
EXPIRY_LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Seconds past expires_at; the expiry grace (1 s by default) is the floor."""
RECOVERY_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
Count = Callable[[], int]
"""A count read when the metrics are scraped."""
ADMISSION_REASONS = ("concurrency", "streams", "rate", "deadline")
"""Why admission refused a call (gateway/grpc/admission.py)."""
RESERVATION_OUTCOMES = (
    "held",
    "replayed",
    "refused_short",
    "refused_limit",
    "refused_sourcing",
    "conflict",
    "extended",
    "confirmed",
    "released",
    "expired",
    "fulfilled",
    "lines_cancelled",
    "returned",
    "reassigned",
)


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
            "Reservation outcomes: " + ", ".join(RESERVATION_OUTCOMES),
            ["outcome"],
            registry=r,
        )
        self.batch_size = Histogram(
            "omnistock_shard_batch_commands",
            "Commands per shard call (one batch)",
            ["shard"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.shard_call = Histogram(
            "omnistock_shard_call_seconds",
            "Round trip of one shard call (a batch) as seen by the gateway",
            ["shard"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.shard_transport = Histogram(
            "omnistock_shard_transport_seconds",
            "Of one shard call's round trip, the time outside the shard's own work: packing,"
            " the batch port's socket, waiting for a core",
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
            "omnistock_shard_call_errors_total", "Shard calls (batches) that failed", ["shard"], registry=r
        )
        self.shard_link_connects = Counter(
            "omnistock_shard_link_connects_total",
            "Connections opened to a shard's batch port (more than one: the shard restarted"
            " or the link broke)",
            ["shard"],
            registry=r,
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
        self.admission_refusal_counter = Counter(
            "omnistock_admission_refusals_total",
            "Calls refused before any work, by reason: concurrency and streams (this gateway's caps),"
            " rate (a caller's rate limit): RESOURCE_EXHAUSTED; deadline (passed on arrival):"
            " DEADLINE_EXCEEDED",
            ["reason"],
            registry=r,
        )
        self.admission_refusals = {
            reason: self.admission_refusal_counter.labels(reason=reason) for reason in ADMISSION_REASONS
        }
        """By reason, looked up once (a flood is refused on the hot path)."""
        self.in_flight = Gauge(
            "omnistock_calls_in_flight",
            "Calls admitted and not yet ended at this gateway: unary calls, and open streams",
            ["kind"],
            registry=r,
        )
        self.queued = Gauge(
            "omnistock_gateway_queued_commands", "Commands waiting for a shard call", registry=r
        )
        self.shard_queued = Gauge(
            "omnistock_shard_queued_commands",
            "Commands waiting in the gateway for a call to the shard",
            ["shard"],
            registry=r,
        )
        self.shard_up = Gauge(
            "omnistock_shard_up",
            "1 when the shard answered the last stats call, else 0",
            ["shard"],
            registry=r,
        )
        self.shard_restarts = Counter(
            "omnistock_shard_restarts_total",
            "Shard actor restarts (a new actor process answered)",
            ["shard"],
            registry=r,
        )
        self.shard_recovery = Histogram(
            "omnistock_shard_recovery_seconds",
            "Time a shard took to rebuild its partitions from Redis (start, restart, journal failure)",
            ["shard"],
            buckets=RECOVERY_BUCKETS,
            registry=r,
        )
        self.journal_failures = Counter(
            "omnistock_journal_write_failures_total",
            "Journal writes to Redis that failed (the batch was refused and the shard rebuilt)",
            ["shard"],
            registry=r,
        )
        self.units_held = Gauge(
            "omnistock_units_held", "Units in open holds (reserved, not yet confirmed)", ["shard"], registry=r
        )
        self.units_committed = Gauge(
            "omnistock_units_committed",
            "Units of confirmed reservations not yet shipped",
            ["shard"],
            registry=r,
        )
        self.hold_age = Histogram(
            "omnistock_hold_age_seconds",
            "Age of a hold when it was confirmed, released or expired (once per shard part)",
            ["outcome"],
            buckets=HOLD_AGE_BUCKETS,
            registry=r,
        )
        self.expiry_lag = Histogram(
            "omnistock_expiry_lag_seconds",
            "How late a hold's units came back past its expires_at (the home's decision carried to the part)",
            ["shard"],
            buckets=EXPIRY_LAG_BUCKETS,
            registry=r,
        )
        self.handoffs_carried = Counter(
            "omnistock_handoffs_carried_total",
            "Decisions a shard handed out (an expiry, a timeout, one its gateway did not finish)"
            " whose steps this gateway carried to the parts in other shards",
            registry=r,
        )
        self.disagreeing = Gauge(
            "omnistock_reservations_disagreeing",
            "Reservations whose parts disagree with each other or with their home's decision, as of"
            " the last audit (0 unless something is broken)",
            registry=r,
        )
        self.in_doubt = Gauge(
            "omnistock_reservations_in_doubt",
            "Reservations undecided or with decided steps still on their way, as of the last audit",
            registry=r,
        )
        self.stockouts = Counter(
            "omnistock_stockouts_total",
            "Positions (SKU at a node) that sold out: the last sellable unit was held or committed",
            ["shard"],
            registry=r,
        )
        self.sold_out = Gauge(
            "omnistock_positions_sold_out",
            "Positions that sold out and have nothing to sell yet again",
            ["shard"],
            registry=r,
        )
        self.auth_refusals = Counter(
            "omnistock_auth_refusals_total",
            "Calls refused by the guard: unauthenticated (no, unknown, revoked or expired credential)"
            " or permission_denied (a scope or channel the caller lacks)",
            ["reason"],
            registry=r,
        )
        for reason in ("unauthenticated", "permission_denied"):
            self.auth_refusals.labels(reason=reason)
        # Every outcome exported from the start, at 0; looked up once (see observe_rpc).
        self._outcomes = {
            outcome: self.reservations.labels(outcome=outcome) for outcome in RESERVATION_OUTCOMES
        }
        for outcome in HOLD_ENDINGS.values():
            self.hold_age.labels(outcome=outcome)
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

    def observe_auth_refusal(self, reason: str) -> None:
        self.auth_refusals.labels(reason=reason).inc()

    def watch_admission(self, calls: Count, streams: Count) -> None:
        """Export the calls and streams in flight, read when scraped."""
        self.in_flight.labels(kind="unary").set_function(calls)
        self.in_flight.labels(kind="stream").set_function(streams)

    def watch_answer_cache(self, hits: Count, misses: Count, entries: Count) -> None:
        """Export the availability answer cache's lookups and size, read when scraped: a page
        looks up hundreds of SKUs, and a counter increment each would cost more than a hit."""
        self.registry.register(_AnswerCacheCollector(hits, misses, entries))

    def count_reservation(self, outcome: str) -> None:
        """One Reserve's outcome (one of RESERVATION_OUTCOMES)."""
        self._outcomes[outcome].inc()

    def watch_queues(self, queued: list[Callable[[], int]]) -> None:
        """Export every shard's queue (and their sum), read when scraped; also creates each
        shard's series at zero, so rates and alerts work before the first event."""
        self.queued.set_function(lambda: sum(depth() for depth in queued))
        for index, depth in enumerate(queued):
            label = str(index)
            self.shard_queued.labels(shard=label).set_function(depth)
            for labelled in (
                self.shard_restarts,
                self.shard_recovery,
                self.journal_failures,
                self.expiry_lag,
                self.stockouts,
                self.shard_errors,
                self.shard_link_connects,
                self.batch_size,
                self.shard_call,
                self.shard_transport,
                self.shard_apply,
                self.journal,
            ):
                labelled.labels(shard=label)

    def observe_shard_stats(self, shard: int, stats: ShardStats | None, restarted: bool) -> None:
        """A stats answer (None: the shard did not answer)."""
        label = str(shard)
        self.shard_up.labels(shard=label).set(0 if stats is None else 1)
        if stats is None:
            return
        if restarted:
            self.shard_restarts.labels(shard=label).inc()
        for seconds in stats.recoveries:
            self.shard_recovery.labels(shard=label).observe(seconds)
        if stats.journal_failures:
            self.journal_failures.labels(shard=label).inc(stats.journal_failures)
        if stats.expired:
            self.reservations.labels(outcome="expired").inc(stats.expired)
        for outcome, seconds in stats.hold_ages:
            self.hold_age.labels(outcome=outcome).observe(seconds)
        for seconds in stats.expiry_lags:
            self.expiry_lag.labels(shard=label).observe(seconds)
        if stats.stockouts:
            self.stockouts.labels(shard=label).inc(stats.stockouts)
        self.units_held.labels(shard=label).set(stats.units_held)
        self.units_committed.labels(shard=label).set(stats.units_committed)
        self.sold_out.labels(shard=label).set(stats.sold_out)

    def observe_audit(self, report: AuditReport) -> None:
        self.disagreeing.set(len(report.disagreements))
        self.in_doubt.set(report.in_doubt)

    def observe_batch(self, shard: int, size: int, reply: BatchReply, seconds: float) -> None:
        label = str(shard)
        self.batch_size.labels(shard=label).observe(size)
        self.shard_call.labels(shard=label).observe(seconds)
        # Two durations, each on its own clock: no clock skew between hosts enters.
        self.shard_transport.labels(shard=label).observe(max(0.0, seconds - reply.busy_seconds))
        self.shard_apply.labels(shard=label).observe(reply.apply_seconds)
        if reply.journal_seconds > 0:
            self.journal.labels(shard=label).observe(reply.journal_seconds)
        if reply.expired:
            self.reservations.labels(outcome="expired").inc(reply.expired)


class _AnswerCacheCollector(Collector):
    def __init__(self, hits: Count, misses: Count, entries: Count) -> None:
        self._hits, self._misses, self._entries = hits, misses, entries

    def collect(self) -> list[Metric]:
        lookups = CounterMetricFamily(
            "omnistock_answer_cache_lookups",
            "SKU answers looked up in the availability answer cache, by whether one held",
            labels=["result"],
        )
        lookups.add_metric(["hit"], self._hits())
        lookups.add_metric(["miss"], self._misses())
        entries = GaugeMetricFamily(
            "omnistock_answer_cache_entries", "Serialized SKU answers the availability answer cache holds"
        )
        entries.add_metric([], self._entries())
        return [lookups, entries]
