"""The gateway settles its heap once its network view has built many SKUs anew, so that a
catalog loaded while serving stays out of every later full collection."""

from __future__ import annotations

from omnistock.availability.positions import PositionView
from omnistock.availability.view import NetworkView
from omnistock.gateway.metrics import Metrics
from omnistock.gateway.transport.view_sync import ViewSync


def rows(skus: range, nodes: tuple[str, ...] = ("n1",), on_hand: int = 5) -> list[PositionView]:
    return [PositionView(f"SKU-{n}", node, on_hand, 0, 0, 1.0) for n in skus for node in nodes]


def syncer(view: NetworkView, settles: list[int], interval: float = 0.0) -> ViewSync:
    return ViewSync(
        view,
        [],
        Metrics(),
        settle=lambda: settles.append(view.skus_built),
        settle_after_skus=100,
        settle_interval=interval,
    )


def test_new_skus_settle_the_heap_once_enough_were_built() -> None:
    view, settles = NetworkView(1), []
    sync = syncer(view, settles)
    view.apply(0, "e", 1, rows(range(99)), 1.0)
    assert not sync.settle_if_grown()
    view.apply(0, "e", 2, rows(range(99, 100)), 2.0)
    assert sync.settle_if_grown()
    assert settles == [100]
    assert not sync.settle_if_grown()  # nothing built since


def test_changed_counts_build_nothing_but_whole_skus_rebuilt_do() -> None:
    view, settles = NetworkView(1), []
    sync = syncer(view, settles)
    view.apply(0, "e", 1, rows(range(100), nodes=("n1", "n2")), 1.0)
    assert sync.settle_if_grown()
    # One position of each SKU changed: updated in place, no new columns.
    view.apply(0, "e", 2, rows(range(100), on_hand=4), 2.0)
    assert view.skus_built == 100
    assert not sync.settle_if_grown()
    # Every node of each SKU again (a resync): rebuilt whole, new columns.
    view.apply(0, "e", 3, rows(range(100), nodes=("n1", "n2"), on_hand=3), 3.0)
    assert view.skus_built == 200
    assert sync.settle_if_grown()
    assert settles == [100, 200]


def test_a_long_load_settles_at_most_once_an_interval() -> None:
    view, settles = NetworkView(1), []
    sync = syncer(view, settles, interval=3_600.0)
    view.apply(0, "e", 1, rows(range(1_000)), 1.0)
    assert not sync.settle_if_grown()
    assert settles == []


def test_without_a_settle_nothing_is_attempted() -> None:
    view = NetworkView(1)
    sync = ViewSync(view, [], Metrics(), settle_after_skus=1, settle_interval=0.0)
    view.apply(0, "e", 1, rows(range(10)), 1.0)
    assert not sync.settle_if_grown()
