"""What a shard tells the gateway's metrics beyond each batch reply (pure).

The shard keeps these figures; the gateway polls them with `Shard.stats()` and owns every
Prometheus series, so a restarted shard never loses a series. Counts and observations are
handed over once ("since the previous stats call"), so several gateways polling one shard
add up to the truth; gauges are the shard's current values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from omnistock.availability.positions import PositionRow
from omnistock.reservations.domain.model import Event, Part, PartChanged, PartState

HOLD_ENDINGS = {
    PartState.CONFIRMED: "confirmed",
    PartState.RELEASED: "released",
    PartState.EXPIRED: "expired",
}


@dataclass(frozen=True, slots=True)
class ShardStats:
    """One answer of `Shard.stats()`."""

    incarnation: str
    """Identity of the actor process: a new one means the actor was restarted."""
    units_held: int
    """Units in open holds (HELD) over every position of the shard."""
    units_committed: int
    """Units of confirmed reservations not yet shipped."""
    sold_out: int
    """Positions (SKU at a node) that sold out and have nothing to sell yet again."""
    stockouts: int
    """Positions that sold out since the previous call."""
    expired: int
    """Hold parts expired since the previous call and not yet told in a batch reply."""
    hold_ages: list[tuple[str, float]]
    """(how it ended, seconds from hold to end) of each hold part ended since the previous call."""
    expiry_lags: list[float]
    """Seconds past expires_at at which each hold part expired since the previous call."""
    journal_failures: int
    """Journal writes that failed since the previous call."""
    recoveries: list[float]
    """Seconds each rebuild from Redis took since the previous call (the start included)."""


class StockWatch:
    """Units held and committed and the positions sold out, kept from the positions the
    shard changes (no scan of the whole shard after the first)."""

    def __init__(self, positions: Iterable[PositionRow]) -> None:
        self._held: dict[tuple[str, str], tuple[int, int]] = {}
        self._out: set[tuple[str, str]] = set()
        self.units_held = 0
        self.units_committed = 0
        self.stockouts = 0
        self.update(positions)
        self.stockouts = 0  # positions already out at the start did not sell out now

    @property
    def sold_out(self) -> int:
        return len(self._out)

    def update(self, positions: Iterable[PositionRow]) -> None:
        held, out = self._held, self._out
        for position in positions:  # on every batch: kept to plain arithmetic on the row
            sku, node_id, on_hand, reserved, committed, _, damaged, quality_hold, _, _ = position
            key = (sku, node_id)
            before = held.get(key)
            if before is not None:
                self.units_held -= before[0]
                self.units_committed -= before[1]
            if reserved or committed:
                held[key] = (reserved, committed)
                self.units_held += reserved
                self.units_committed += committed
            elif before is not None:
                del held[key]
            if on_hand - damaged - quality_hold - reserved - committed > 0:
                out.discard(key)
            elif on_hand > 0 and key not in out:
                # Units on hand, none left to sell: the last one was held or committed (or
                # written off). Shipping them later keeps the position sold out, not again.
                out.add(key)
                self.stockouts += 1

    def take_stockouts(self) -> int:
        taken, self.stockouts = self.stockouts, 0
        return taken


@dataclass(slots=True)
class HoldEndings:
    """How long holds lived and how late they expired, from the events a shard journaled."""

    ages: list[tuple[str, float]] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)

    def note(
        self, events: Mapping[int, list[Event]], parts: Mapping[int, Mapping[str, Part]], now: float
    ) -> None:
        """`parts` by partition, after the events were applied (a part keeps its created_at)."""
        for number, partition_events in events.items():
            for event in partition_events:
                if not isinstance(event, PartChanged) or event.state not in HOLD_ENDINGS:
                    continue
                part = parts[number].get(event.reservation_id)
                if part is None:
                    continue
                self.ages.append((HOLD_ENDINGS[event.state], max(0.0, event.at - part.created_at)))
                if event.state is PartState.EXPIRED:  # an expiry's `at` is the hold's expires_at
                    self.lags.append(max(0.0, now - event.at))

    def take(self) -> tuple[list[tuple[str, float]], list[float]]:
        taken = self.ages, self.lags
        self.ages, self.lags = [], []
        return taken
