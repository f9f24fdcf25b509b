"""Admission control: which calls a gateway takes on, decided before any work is done.

Beyond a limit a call is refused at once, never queued: with RESOURCE_EXHAUSTED, a
google.rpc.RetryInfo saying when to try again and an ErrorInfo naming the limit. Three limits:

- calls: unary calls in flight at this gateway (`max_calls`);
- streams: open streams at this gateway (live feeds, stock loads, reflection; `max_streams`);
- rate: a token bucket per caller (`rate_per_key`, `burst_per_key`), counted by the caller's
  rate key (gateway/usecases/access.py `Caller.rate_key`).

A call that arrives with its deadline passed, or with less than `deadline_floor` left, is
dropped with DEADLINE_EXCEEDED before its handler runs: its caller has stopped waiting, and
any work for it would be thrown away.

A call counts from the moment the gateway takes it up from gRPC (the server interceptor,
before its request is read) until it is answered. Before that a call waits inside gRPC,
where no count of the gateway's sees it: under a flood of cheap calls (availability from
the cache, about 0.2 ms each, hardly ever "in flight") that is where the waiting is, and the
HTTP/2 cap of streams per connection (`connection_streams`, `server_options`) bounds it.

`Admission.admit` is the decision (no gRPC in it); `admit_call` applies it to one arriving
call's method handler, from the guard (gateway/grpc/guard.py) once it knows the caller.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from omnistock.gateway.metrics import ADMISSION_REASONS, Metrics
from omnistock.gateway.usecases.rate_limit import RateLimiter

REASONS: Final = ADMISSION_REASONS
"""Why a call was refused: the label of omnistock_admission_refusals_total."""
EXEMPT_PREFIXES: Final = ("/grpc.health.v1.Health/",)
"""Never refused: a load balancer that saw health checks fail at overload would take the
gateway out and send its load to the others."""
ERROR_DOMAIN = "omnistock.io"


@dataclass(frozen=True, slots=True)
class AdmissionSettings:
    """A gateway's limits under load. The defaults leave room for every normal load (the
    bench, the peak-day load test) and only refuse a flood."""

    max_calls: int = 1000
    """Unary calls in flight at one gateway; 0: no cap."""
    max_streams: int = 1000
    """Open streams at one gateway (live feeds, stock loads); 0: no cap."""
    rate_per_key: float = 0.0
    """Calls a second each caller may make, per gateway; 0: no rate limit."""
    burst_per_key: int = 0
    """Calls a caller may make at once beyond its rate; 0: one second's worth (at least 1)."""
    connection_streams: int = 1000
    """HTTP/2 streams one connection may have open (SETTINGS_MAX_CONCURRENT_STREAMS); a
    client queues its calls beyond it on its side. 0: gRPC's default."""
    deadline_floor: float = 0.002
    """A call arriving with less time than this left is dropped (DEADLINE_EXCEEDED)."""
    busy_retry_after: float = 0.05
    """RetryInfo's delay when the gateway is at its cap of calls in flight."""
    streams_retry_after: float = 1.0
    """RetryInfo's delay when the gateway is at its cap of open streams."""

    def problems(self) -> list[tuple[str, str]]:
        """(setting, description) of every setting out of range."""
        found = []
        for name in ("max_calls", "max_streams", "burst_per_key", "connection_streams"):
            if getattr(self, name) < 0:
                found.append((name, f"must not be negative (0: no cap), got {getattr(self, name)}"))
        for name in ("rate_per_key", "deadline_floor", "busy_retry_after", "streams_retry_after"):
            value = getattr(self, name)
            if not 0 <= value < float("inf"):
                found.append((name, f"must be a finite number >= 0, got {value}"))
        return found

    @property
    def burst(self) -> float:
        return float(self.burst_per_key or max(1.0, self.rate_per_key))


def server_options(settings: AdmissionSettings) -> list[tuple[str, int]]:
    """The limit gRPC keeps itself, below any Python: streams per connection. Admission sees a
    call once the gateway takes it up from gRPC; under a flood of cheap calls the waiting is
    in gRPC before that, and this cap keeps each connection's share of it small (its other
    calls wait at the client)."""
    if not settings.connection_streams:
        return []
    return [("grpc.max_concurrent_streams", settings.connection_streams)]


class Slot:
    """What an admitted call holds until it ends. `release` gives it back (again: nothing);
    a slot dropped unreleased gives itself back, so a call that ends before its handler ran
    (cancelled while its request was on the way) leaks no place."""

    __slots__ = ("_admission", "held", "streaming")

    def __init__(self, admission: Admission, streaming: bool) -> None:
        self._admission, self.streaming, self.held = admission, streaming, True

    def release(self) -> None:
        if self.held:
            self.held = False
            if self.streaming:
                self._admission.streams -= 1
            else:
                self._admission.calls -= 1

    def __del__(self) -> None:
        self.release()


@dataclass(frozen=True, slots=True)
class Refused:
    """A call not taken on: `reason` one of REASONS; `retry_after` seconds (None for a
    deadline already passed); `message` says which limit, in words."""

    reason: str
    message: str
    retry_after: float | None

    def status(self) -> grpc.Status:
        """The gRPC status the caller gets (rich: RetryInfo and ErrorInfo details); made once
        for the refusals that say the same each time."""
        return _status_of(self)

    def _make_status(self) -> grpc.Status:
        if self.retry_after is None:
            return rpc_status.to_status(
                status_pb2.Status(code=code_pb2.DEADLINE_EXCEEDED, message=self.message)
            )
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(max(1_000_000, round(self.retry_after * 1e9)))  # at least 1 ms
        details = [
            error_details_pb2.RetryInfo(retry_delay=delay),
            error_details_pb2.ErrorInfo(
                reason=f"{self.reason.upper()}_LIMIT", domain=ERROR_DOMAIN, metadata={"limit": self.reason}
            ),
        ]
        packed = []
        for detail in details:
            any_detail = any_pb2.Any()
            any_detail.Pack(detail)
            packed.append(any_detail)
        message = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=self.message, details=packed)
        return rpc_status.to_status(message)


@functools.lru_cache(maxsize=64)
def _status_of(refused: Refused) -> grpc.Status:
    return refused._make_status()


class Admission:
    """One gateway's admission control: counts what is in flight, one bucket per caller."""

    def __init__(
        self,
        settings: AdmissionSettings,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        problems = settings.problems()
        if problems:
            raise ValueError("; ".join(f"{name} {description}" for name, description in problems))
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.calls = 0
        """Unary calls in flight."""
        self.streams = 0
        """Streams open."""
        self._max_calls = settings.max_calls or None
        self._max_streams = settings.max_streams or None
        self._rates = RateLimiter(settings.rate_per_key, settings.burst) if settings.rate_per_key else None
        # The refusals that say the same each time, made once: a flood is refused cheaply.
        self._busy = Refused(
            "concurrency",
            f"this gateway has {settings.max_calls} calls in flight, its limit; retry after the delay"
            " in RetryInfo",
            settings.busy_retry_after,
        )
        self._full = Refused(
            "streams",
            f"this gateway has {settings.max_streams} streams open, its limit; retry after the delay"
            " in RetryInfo",
            settings.streams_retry_after,
        )
        self._late = Refused(
            "deadline",
            "the call's deadline had passed (or nearly) when the gateway took it up; nothing was done",
            None,
        )
        self._refusals = metrics.admission_refusals if metrics is not None else None
        if metrics is not None:
            metrics.watch_admission(lambda: self.calls, lambda: self.streams)

    def admit(self, *, streaming: bool, rate_key: str, deadline_remaining: float | None) -> Slot | Refused:
        """A slot to hold until the call ends, or why the call is refused (nothing taken)."""
        if deadline_remaining is not None and deadline_remaining < self.settings.deadline_floor:
            return self._refuse(self._late)
        if streaming:
            if self._max_streams is not None and self.streams >= self._max_streams:
                return self._refuse(self._full)
        elif self._max_calls is not None and self.calls >= self._max_calls:
            return self._refuse(self._busy)
        if self._rates is not None:
            wait = self._rates.take(rate_key, self.clock())
            if wait:
                settings = self.settings
                return self._refuse(
                    Refused(
                        "rate",
                        f"this caller is over its rate limit of {settings.rate_per_key:g} calls a second"
                        f" (burst {settings.burst:g}) at this gateway; retry in {wait:.3f} s",
                        wait,
                    )
                )
        if streaming:
            self.streams += 1
        else:
            self.calls += 1
        return Slot(self, streaming)

    def late(self, deadline_remaining: float | None) -> Refused | None:
        """A call already admitted, now that its deadline is known: refused if it is too late."""
        if deadline_remaining is not None and deadline_remaining < self.settings.deadline_floor:
            return self._refuse(self._late)
        return None

    def _refuse(self, refused: Refused) -> Refused:
        if self._refusals is not None:
            self._refusals[refused.reason].inc()
        return refused


def method_label(method: str) -> str | None:
    """The `method` label of omnistock's own RPCs (`/omnistock.v1.X/Reserve` -> `Reserve`);
    None for any other path (no label from a path a client made up)."""
    if not method.startswith("/omnistock.v1."):
        return None
    return method.rsplit("/", 1)[-1]


def admit_call(
    handler: grpc.RpcMethodHandler, admission: Admission, method: str, rate_key: str
) -> grpc.RpcMethodHandler:
    """Admission for one call as it arrives (from a server interceptor, before its request is
    read): `handler` holding a slot until the call ends, or a handler of the same kind that
    refuses at once. The call's deadline is known only to its handler: a call let in that
    turns out too late gives its slot back and is dropped before `handler` runs."""
    streaming = handler.request_streaming or handler.response_streaming
    started = time.perf_counter()
    decided = admission.admit(streaming=streaming, rate_key=rate_key, deadline_remaining=None)
    label = method_label(method)
    if isinstance(decided, Refused):
        return _refusing(handler, decided, admission.metrics, label, started)
    return _holding(handler, decided, admission, label, started)


async def _refuse(
    refused: Refused,
    context: grpc.aio.ServicerContext,
    metrics: Metrics | None,
    label: str | None,
    started: float,
) -> NoReturn:
    if metrics is not None and label is not None:
        code = "DEADLINE_EXCEEDED" if refused.retry_after is None else "RESOURCE_EXHAUSTED"
        metrics.observe_rpc(label, code, time.perf_counter() - started)
    await context.abort_with_status(refused.status())
    raise AssertionError("abort_with_status returned")  # it always raises


def behaviour_field(handler: grpc.RpcMethodHandler) -> str:
    """The field of `handler` that holds its behaviour."""
    if handler.request_streaming:
        return "stream_stream" if handler.response_streaming else "stream_unary"
    return "unary_stream" if handler.response_streaming else "unary_unary"


def _refusing(
    handler: grpc.RpcMethodHandler,
    refused: Refused,
    metrics: Metrics | None,
    label: str | None,
    started: float,
) -> grpc.RpcMethodHandler:
    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await _refuse(refused, context, metrics, label, started)

    # The request is never read: gRPC hands it over as bytes, unparsed.
    return handler._replace(**{behaviour_field(handler): refuse, "request_deserializer": None})


def _holding(
    handler: grpc.RpcMethodHandler, slot: Slot, admission: Admission, label: str | None, started: float
) -> grpc.RpcMethodHandler:
    kind = behaviour_field(handler)
    behaviour = getattr(handler, kind)
    metrics = admission.metrics

    async def check_deadline(context: grpc.aio.ServicerContext) -> None:
        late = admission.late(context.time_remaining())
        if late is not None:
            slot.release()
            await _refuse(late, context, metrics, label, started)

    if kind in ("unary_unary", "stream_unary"):

        async def answer(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                await check_deadline(context)
                return await behaviour(request, context)
            finally:
                slot.release()

        return handler._replace(**{kind: answer})

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            await check_deadline(context)
            answers = behaviour(request, context)
            if hasattr(answers, "__aiter__"):
                async for item in answers:
                    yield item
            else:  # a handler that writes through the context
                await answers
        finally:
            slot.release()

    return handler._replace(**{kind: stream})
