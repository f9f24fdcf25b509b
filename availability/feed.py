"""What changed when: the view's recent history, for resumable live feeds (pure)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class ChangeHistory:
    """The SKUs changed at each recent view version, up to `capacity` versions back."""

    def record(self, version: int, skus: Iterable[str]) -> None:
        # Tuples of strings, not sets: the garbage collector stops tracking a tuple of
        # untracked values, so a full history (100,000 versions, minutes of peak traffic)
        # adds nothing to what each full collection scans while every call waits.
        self._entries.append((version, tuple(skus)))

    def __init__(self, first_version: int = 0, capacity: int = 100_000) -> None:
        self._first = first_version
        self._entries: deque[tuple[int, tuple[str, ...]]] = deque(maxlen=capacity)

    def changed_since(self, version: int) -> set[str] | None:
        """SKUs changed after `version`, or None when this history cannot say: the version is
        older than what it keeps, or was never one of this view's (another gateway, or
        before a restart)."""
        newest = self._entries[-1][0] if self._entries else self._first
        oldest = self._entries[0][0] - 1 if self._entries else self._first
        if not oldest <= version <= newest:
            return None
        changed: set[str] = set()
        for entry_version, skus in reversed(self._entries):
            if entry_version <= version:
                break
            changed.update(skus)
        return changed
