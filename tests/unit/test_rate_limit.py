"""Limits under load, decided without gRPC: the token bucket per caller and the gateway's
admission (caps on calls and streams, rates, deadlines), on a clock stepped by hand."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from omnistock.gateway.grpc.admission import Admission, AdmissionSettings, Refused, Slot
from omnistock.gateway.metrics import Metrics
from omnistock.gateway.usecases.rate_limit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_lets_a_burst_through_then_refuses_with_the_wait_for_the_next_token() -> None:
    limiter = RateLimiter(rate=4.0, burst=3)
    assert [limiter.take("web", 10.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("web", 10.0) == pytest.approx(0.25)
    # A refusal takes nothing: a little later the wait is shorter by as much.
    assert limiter.take("web", 10.1) == pytest.approx(0.15)
    assert limiter.take("web", 10.25) == 0.0
    assert limiter.take("web", 10.25) == pytest.approx(0.25)


def test_an_idle_bucket_fills_to_its_burst_and_no_further() -> None:
    limiter = RateLimiter(rate=10.0, burst=2)
    limiter.take("pos", 0.0)
    limiter.take("pos", 0.0)
    taken = [limiter.take("pos", 3600.0) for _ in range(3)]
    assert taken[:2] == [0.0, 0.0]
    assert taken[2] > 0


def test_each_caller_has_its_own_bucket() -> None:
    limiter = RateLimiter(rate=1.0, burst=1)
    assert limiter.take("storefront", 0.0) == 0.0
    assert limiter.take("storefront", 0.0) > 0
    assert limiter.take("marketplace", 0.0) == 0.0


def test_buckets_are_bounded_and_a_forgotten_caller_starts_full() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_buckets=10)
    for i in range(100):
        limiter.take(f"key-{i}", float(i))
    assert len(limiter) <= 10
    assert limiter.take("key-0", 100.0) == 0.0


def test_bad_bucket_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(rate=0.0, burst=1)
    with pytest.raises(ValueError, match="burst"):
        RateLimiter(rate=1.0, burst=0)


def refusals(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value("omnistock_admission_refusals_total", {"reason": reason})
    return value or 0.0


def in_flight(metrics: Metrics, kind: str) -> float:
    return metrics.registry.get_sample_value("omnistock_calls_in_flight", {"kind": kind}) or 0.0


def admit(
    admission: Admission, streaming: bool = False, key: str = "web", left: float | None = None
) -> Slot | Refused:
    return admission.admit(streaming=streaming, rate_key=key, deadline_remaining=left)


def test_calls_beyond_the_cap_are_refused_until_one_ends() -> None:
    metrics = Metrics()
    admission = Admission(AdmissionSettings(max_calls=2, busy_retry_after=0.05), metrics)
    first, second = admit(admission), admit(admission)
    assert isinstance(first, Slot) and isinstance(second, Slot)
    assert in_flight(metrics, "unary") == 2
    third = admit(admission)
    assert isinstance(third, Refused)
    assert (third.reason, third.retry_after) == ("concurrency", 0.05)
    assert "2 calls in flight" in third.message
    assert refusals(metrics, "concurrency") == 1
    first.release()
    fourth = admit(admission)
    assert isinstance(fourth, Slot)
    assert in_flight(metrics, "unary") == 2
    first.release()  # again: nothing
    assert in_flight(metrics, "unary") == 2


def test_a_slot_dropped_without_release_gives_itself_back() -> None:
    admission = Admission(AdmissionSettings(max_calls=1))
    slot = admit(admission)
    assert admission.calls == 1
    del slot  # a call that ended before its handler ran
    assert admission.calls == 0
    assert isinstance(admit(admission), Slot)


def test_streams_have_their_own_cap() -> None:
    metrics = Metrics()
    admission = Admission(AdmissionSettings(max_calls=1, max_streams=1), metrics)
    feed = admit(admission, streaming=True)
    assert isinstance(feed, Slot)
    refused = admit(admission, streaming=True)
    assert isinstance(refused, Refused) and refused.reason == "streams"
    call = admit(admission)
    assert isinstance(call, Slot)  # a unary call still comes in
    assert (in_flight(metrics, "unary"), in_flight(metrics, "stream")) == (1, 1)
    assert refusals(metrics, "streams") == 1


def test_no_cap_when_set_to_zero() -> None:
    admission = Admission(AdmissionSettings(max_calls=0, max_streams=0))
    held = [admit(admission, streaming=n % 2 == 0) for n in range(5000)]
    assert all(isinstance(slot, Slot) for slot in held)
    assert (admission.calls, admission.streams) == (2500, 2500)


def test_a_caller_over_its_rate_is_refused_with_the_wait_and_others_are_not() -> None:
    clock = Clock()
    metrics = Metrics()
    admission = Admission(AdmissionSettings(rate_per_key=2.0, burst_per_key=2), metrics, clock)
    held = [admit(admission, key="flood") for _ in range(2)]
    assert all(isinstance(slot, Slot) for slot in held)
    refused = admit(admission, key="flood")
    assert isinstance(refused, Refused)
    assert refused.reason == "rate"
    assert refused.retry_after == pytest.approx(0.5)
    assert "2 calls a second" in refused.message
    held.append(admit(admission, key="pos-feed"))
    clock.now += 0.5
    held.append(admit(admission, key="flood"))
    assert all(isinstance(slot, Slot) for slot in held)
    assert refusals(metrics, "rate") == 1
    assert admission.calls == 4  # a refused call holds no slot


def test_a_call_whose_deadline_passed_is_dropped_before_it_takes_anything() -> None:
    metrics = Metrics()
    settings = AdmissionSettings(rate_per_key=1.0, burst_per_key=1, deadline_floor=0.01)
    admission = Admission(settings, metrics, Clock())
    for left in (0.0, -3.0, 0.009):
        late = admit(admission, left=left)
        assert isinstance(late, Refused)
        assert (late.reason, late.retry_after) == ("deadline", None)
    assert admission.calls == 0
    assert refusals(metrics, "deadline") == 3
    # Its token is still there: the next call with time left comes in.
    assert isinstance(admit(admission, left=5.0), Slot)
    assert isinstance(admit(admission, left=None), Refused)  # and the bucket is now empty
    # A call let in before its deadline was known (on arrival) is checked once it is.
    assert admission.late(None) is None and admission.late(1.0) is None
    late = admission.late(0.001)
    assert late is not None and late.reason == "deadline"
    assert refusals(metrics, "deadline") == 4


def test_a_refusal_carries_retry_info_and_names_its_limit() -> None:
    refused = Refused("concurrency", "this gateway has 8 calls in flight, its limit", 0.05)
    status = refused.status()
    assert status.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    details = dict(status.trailing_metadata)["grpc-status-details-bin"]
    rich = status_pb2.Status.FromString(details)
    assert rich.message == refused.message
    retry, info = error_details_pb2.RetryInfo(), error_details_pb2.ErrorInfo()
    assert rich.details[0].Unpack(retry) and rich.details[1].Unpack(info)
    assert retry.retry_delay.ToNanoseconds() == 50_000_000
    assert info.reason == "CONCURRENCY_LIMIT"
    assert info.metadata["limit"] == "concurrency"


def test_a_late_call_gets_deadline_exceeded_without_retry_info() -> None:
    status = Refused("deadline", "too late", None).status()
    assert status.code is grpc.StatusCode.DEADLINE_EXCEEDED
    rich = status_pb2.Status.FromString(dict(status.trailing_metadata)["grpc-status-details-bin"])
    assert not rich.details


def test_settings_out_of_range_are_refused_naming_each() -> None:
    with pytest.raises(ValueError, match="max_calls") as refused:
        Admission(AdmissionSettings(max_calls=-1, rate_per_key=float("nan")))
    assert "rate_per_key" in str(refused.value)


def test_the_burst_defaults_to_one_seconds_worth() -> None:
    assert AdmissionSettings(rate_per_key=50.0).burst == 50.0
    assert AdmissionSettings(rate_per_key=0.2).burst == 1.0
    assert AdmissionSettings(rate_per_key=5.0, burst_per_key=20).burst == 20.0
