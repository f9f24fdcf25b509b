"""Cached availability answers hold exactly while the SKU's stamp and the network are the same."""

from __future__ import annotations

from availability.network import Network
from availability.view import NetworkView
from gateway.answer_cache import AnswerCache
from protos.gen.omnistock.v1 import availability_pb2
from reservations.model import PositionView


def test_an_answer_holds_until_its_sku_or_the_network_changes() -> None:
    view, cache, network = NetworkView(shards=1), AnswerCache(), Network()
    view.apply(0, "e", 1, [PositionView("a", "n1", 5, 0, 0, 1.0), PositionView("b", "n1", 3, 0, 0, 1.0)], 1.0)
    key = ("", False)
    built = cache.put(
        "a", key, view.stamp("a"), network, availability_pb2.SkuAvailability(sku="a", available=5)
    )
    assert cache.get("a", key, view.stamp("a"), network) is built
    assert cache.get("a", ("web", False), view.stamp("a"), network) is None  # another channel
    # Another SKU changes: a's answer still holds.
    view.apply(0, "e", 2, [PositionView("b", "n1", 2, 0, 0, 2.0)], 2.0)
    assert cache.get("a", key, view.stamp("a"), network) is built
    # a changes: its answer is rebuilt.
    view.apply(0, "e", 3, [PositionView("a", "n1", 4, 0, 0, 3.0)], 3.0)
    assert cache.get("a", key, view.stamp("a"), network) is None
    cache.put("a", key, view.stamp("a"), network, availability_pb2.SkuAvailability(sku="a", available=4))
    # The network is replaced on every change: every answer is rebuilt.
    assert cache.get("a", key, view.stamp("a"), Network()) is None


def test_the_cache_starts_again_when_full() -> None:
    cache, network = AnswerCache(max_entries=2), Network()
    for sku in ("a", "b", "c"):
        cache.put(sku, ("", False), 1, network, availability_pb2.SkuAvailability(sku=sku))
    assert len(cache) == 1
    assert cache.get("c", ("", False), 1, network) is not None
