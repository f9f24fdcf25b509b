"""Per-caller rate limits: a token bucket per rate key (an API key's id, a token's issuer
and subject). Pure: the clock is a number passed in, so tests step it by hand.

A bucket holds up to `burst` calls and refills at `rate` calls a second; a call takes one
token or is refused with the time until one is there. Buckets live in memory, one set per
gateway: with N gateways a caller may reach N times its rate, which is the price of not
asking Redis on every call (the limit protects each gateway's capacity, not a billing plan).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_BUCKETS = 100_000
"""Callers tracked at most; beyond it the buckets idle longest are forgotten (a forgotten
caller starts again with a full bucket, so forgetting is never stricter than remembering)."""


@dataclass(slots=True)
class Bucket:
    tokens: float
    stamp: float
    """When `tokens` was last brought up to date."""


class RateLimiter:
    """A token bucket per key, all with the same rate and burst."""

    __slots__ = ("_buckets", "burst", "max_buckets", "rate")

    def __init__(self, rate: float, burst: float, max_buckets: int = MAX_BUCKETS) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be above 0 calls a second, got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1 call, got {burst}")
        self.rate = rate
        self.burst = float(burst)
        self.max_buckets = max_buckets
        self._buckets: dict[str, Bucket] = {}

    def take(self, key: str, now: float) -> float:
        """Take a token of `key`'s bucket: 0.0 when taken, else the seconds until one is there
        (nothing is taken then)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_buckets:
                self._forget_idle()
            self._buckets[key] = Bucket(self.burst - 1.0, now)
            return 0.0
        tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if tokens >= 1.0:
            bucket.tokens = tokens - 1.0
            return 0.0
        bucket.tokens = tokens
        return (1.0 - tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget_idle(self) -> None:
        """Forget the older half of the buckets by last use (least recently used first)."""
        by_age = sorted(self._buckets.items(), key=lambda item: item[1].stamp)
        for key, _ in by_age[: max(1, len(by_age) // 2)]:
            del self._buckets[key]
