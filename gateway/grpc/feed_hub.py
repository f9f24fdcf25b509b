"""Fan-out of view changes to WatchAvailability streams.

Each stream keeps a set of pending SKUs rather than a queue: a slow reader gets the
latest state of each SKU once, and memory stays bounded by the SKUs it watches.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from omnistock.availability.answer import SkuAvailability
from omnistock.availability.feed import ChangeHistory
from omnistock.availability.network import StockStatus
from omnistock.availability.view import NetworkView

CHUNK = 500


class Subscription:
    def __init__(self, skus: frozenset[str] | None) -> None:
        self.skus = skus
        """None watches every SKU."""
        self.pending: set[str] = set()
        self.wake = asyncio.Event()

    def offer(self, changed: set[str]) -> None:
        mine = changed if self.skus is None else changed & self.skus
        if mine:
            self.pending |= mine
            self.wake.set()

    def take(self) -> set[str]:
        taken, self.pending = self.pending, set()
        self.wake.clear()
        return taken


class WatchHub:
    def __init__(self, view: NetworkView, history: ChangeHistory) -> None:
        self.view = view
        self.history = history
        self._subscriptions: set[Subscription] = set()

    def on_change(self, changed: set[str]) -> None:
        """Called by the view sync after each change of the view."""
        self.history.record(self.view.version, changed)
        for subscription in self._subscriptions:
            subscription.offer(changed)

    async def watch(
        self,
        skus: frozenset[str] | None,
        from_version: int,
        answer: Callable[[str], SkuAvailability],
    ) -> AsyncIterator[tuple[int, bool, list[tuple[SkuAvailability, StockStatus | None]]]]:
        """Yields (version, catch_up, [(answer, previous status)]) as availability changes."""
        subscription = Subscription(skus)
        self._subscriptions.add(subscription)
        sent: dict[str, tuple[int, StockStatus | None]] = {}
        try:
            since = self.history.changed_since(from_version) if from_version else None
            if since is None:
                first = set(skus) if skus is not None else set(self.view.skus())
            else:
                first = since if skus is None else since & skus
            ordered = sorted(first)
            for start in range(0, len(ordered), CHUNK):
                rows = [answer(sku) for sku in ordered[start : start + CHUNK]]
                for row in rows:
                    sent[row.sku] = (row.available, row.status)
                yield self.view.version, True, [(row, None) for row in rows]
            if not ordered:  # nothing to catch up on: say so, with the version to resume from
                yield self.view.version, True, []
            while True:
                await subscription.wake.wait()
                changes = []
                for sku in sorted(subscription.take()):
                    row = answer(sku)
                    before = sent.get(sku)
                    if before is not None and before == (row.available, row.status):
                        continue
                    sent[sku] = (row.available, row.status)
                    changes.append((row, before[1] if before else None))
                if changes:
                    yield self.view.version, False, changes
        finally:
            self._subscriptions.discard(subscription)

    def rules_changed(self) -> None:
        """Every watched SKU may answer differently under new rules."""
        everything = set(self.view.skus())
        for subscription in self._subscriptions:
            subscription.offer(everything)

    @property
    def watchers(self) -> int:
        return len(self._subscriptions)
