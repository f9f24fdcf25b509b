"""What changed when: the view's recent history, for resumable live feeds (pure)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class ChangeHistory:
    """The SKUs changed at each recent view version, up to `capacity` versions back."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._entries: deque[tuple[int, frozenset[str]]] = deque(maxlen=capacity)

    def record(self, version: int, skus: Iterable[str]) -> None:
        self._entries.append((version, frozenset(skus)))

    def changed_since(self, version: int) -> set[str] | None:
        """SKUs changed after `version`, or None when the history no longer reaches back that far."""
        if self._entries and self._entries[0][0] > version + 1:
            return None
        changed: set[str] = set()
        for entry_version, skus in reversed(self._entries):
            if entry_version <= version:
                break
            changed |= skus
        return changed
