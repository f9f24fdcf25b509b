"""Cached availability answers hold exactly while the SKU's stamp and the network are the same."""

from __future__ import annotations

import gc

from omnistock.availability.network import Network
from omnistock.availability.positions import PositionView
from omnistock.availability.view import NetworkView
from omnistock.gateway.grpc.answer_cache import AnswerCache
from omnistock.gateway.grpc.convert import to_timestamp
from omnistock.gateway.metrics import Metrics
from omnistock.protos.gen.omnistock.v1 import availability_pb2, common_pb2


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


def test_a_full_cache_leaves_nothing_for_the_garbage_collector_to_scan() -> None:
    """A full collection stalls every call in flight for as long as it scans; the cache
    holds up to 500,000 answers, so its entries may not stay tracked."""
    cache, network = AnswerCache(), Network()
    for n in range(2_000):
        cache.put(
            f"SKU-{n}", ("web", n % 2 == 0), 7, network, availability_pb2.SkuAvailability(sku=f"SKU-{n}")
        )
    gc.collect()
    gc.collect()  # a tuple is untracked once what it holds was found untracked
    entries = cache._entries
    assert not [e for e in (*entries, *entries.values()) if gc.is_tracked(e)]
    assert cache.get("SKU-3", ("web", False), 7, network) is not None


def test_the_cache_starts_again_when_full() -> None:
    cache, network = AnswerCache(max_entries=2), Network()
    for sku in ("a", "b", "c"):
        cache.put(sku, ("", False), 1, network, availability_pb2.SkuAvailability(sku=sku))
    assert len(cache) == 1
    assert cache.get("c", ("", False), 1, network) is not None


def test_joined_fragments_parse_as_the_response_built_whole() -> None:
    cache, network = AnswerCache(), Network()
    answers = [
        availability_pb2.SkuAvailability(sku="a", available=5, on_hand=7, reserved=2),
        availability_pb2.SkuAvailability(sku="b"),  # an unknown SKU answers zero
        availability_pb2.SkuAvailability(
            sku="c", available=1, nodes=[common_pb2.Position(node_id="n1", on_hand=1)]
        ),
    ]
    parts = [cache.put(a.sku, ("", True), 1, network, a) for a in answers]
    joined = b"".join([*parts, cache.response_tail(1_700_000_000.25, 42)])
    whole = availability_pb2.GetAvailabilityResponse(
        skus=answers, as_of=to_timestamp(1_700_000_000.25), version=42
    )
    assert availability_pb2.GetAvailabilityResponse.FromString(joined) == whole
    # The same SKU twice in one ask answers twice, in the order asked.
    twice = availability_pb2.GetAvailabilityResponse.FromString(parts[0] + parts[0])
    assert [a.sku for a in twice.skus] == ["a", "a"]


def test_the_response_tail_follows_the_view() -> None:
    cache = AnswerCache()
    first = cache.response_tail(10.0, 1)
    assert cache.response_tail(10.0, 1) is first
    later = availability_pb2.GetAvailabilityResponse.FromString(cache.response_tail(11.5, 2))
    assert (later.version, later.as_of.seconds, later.as_of.nanos) == (2, 11, 500_000_000)


def test_lookups_and_entries_are_exported_when_scraped() -> None:
    metrics, cache, network = Metrics(), AnswerCache(), Network()
    metrics.watch_answer_cache(lambda: cache.hits, lambda: cache.misses, lambda: len(cache))
    key = ("", False)

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert sample("omnistock_answer_cache_lookups_total", result="hit") == 0
    assert cache.get("a", key, 1, network) is None
    cache.put("a", key, 1, network, availability_pb2.SkuAvailability(sku="a", available=5))
    cache.get("a", key, 1, network)
    cache.get("a", key, 1, network)
    assert sample("omnistock_answer_cache_lookups_total", result="miss") == 1
    assert sample("omnistock_answer_cache_lookups_total", result="hit") == 2
    assert sample("omnistock_answer_cache_entries") == 1
