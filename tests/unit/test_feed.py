"""ChangeHistory: what a resuming feed must send first."""

from __future__ import annotations

import gc

from omnistock.availability.feed import ChangeHistory


def test_changes_after_a_version_are_the_union_of_later_entries() -> None:
    history = ChangeHistory(first_version=100)
    history.record(101, {"a"})
    history.record(102, {"b", "c"})
    history.record(103, {"a", "d"})
    assert history.changed_since(101) == {"a", "b", "c", "d"}
    assert history.changed_since(102) == {"a", "d"}
    assert history.changed_since(100) == {"a", "b", "c", "d"}
    assert history.changed_since(103) == set()  # up to date: nothing to send


def test_versions_this_history_cannot_vouch_for_ask_for_a_snapshot() -> None:
    history = ChangeHistory(first_version=1_000, capacity=2)
    assert history.changed_since(1_000) == set()
    assert history.changed_since(999) is None  # before this view began (another gateway, a restart)
    assert history.changed_since(1_001) is None  # a version this view never had
    for version in (1_001, 1_002, 1_003):
        history.record(version, {f"s{version}"})
    assert history.changed_since(1_001) == {"s1002", "s1003"}
    assert history.changed_since(1_000) is None  # trimmed away: the history no longer reaches back
    assert history.changed_since(5_000) is None


def test_a_full_history_leaves_nothing_for_the_garbage_collector_to_scan() -> None:
    """A full collection stalls every call in flight for as long as it scans; the history
    keeps up to 100,000 versions, so none of its entries may stay tracked."""
    history = ChangeHistory(first_version=0, capacity=1_000)
    for version in range(1, 3_001):
        history.record(version, {f"SKU-{version % 97}", f"SKU-{version % 13}"})
    gc.collect()
    gc.collect()  # an entry is untracked once the SKUs it holds were found untracked
    assert not [entry for entry in history._entries if gc.is_tracked(entry) or gc.is_tracked(entry[1])]
    assert history.changed_since(2_998) == {"SKU-89", "SKU-9", "SKU-90", "SKU-10"}
