"""Availability answers kept as built protobuf messages until their SKU or the network changes.

A product-listing page asks the same SKUs over and over, and most of them have not
changed since the last ask; building an answer costs tens of microseconds of Python per
SKU, copying a built one a fraction of that. An entry holds while the SKU's stamp in the
network view (the view version of its last change) and the network (replaced whole on
every change) are the ones it was built from.
"""

from __future__ import annotations

from availability.network import Network
from protos.gen.omnistock.v1 import availability_pb2

Key = tuple[str, bool]
"""(channel_id, include_nodes) of the ask."""


class AnswerCache:
    def __init__(self, max_entries: int = 500_000) -> None:
        self._entries: dict[tuple[str, Key], tuple[int, Network, availability_pb2.SkuAvailability]] = {}
        self._max_entries = max_entries
        self.hits = 0
        self.misses = 0

    def get(
        self, sku: str, key: Key, stamp: int, network: Network
    ) -> availability_pb2.SkuAvailability | None:
        entry = self._entries.get((sku, key))
        if entry is not None and entry[0] == stamp and entry[1] is network:
            self.hits += 1
            return entry[2]
        self.misses += 1
        return None

    def put(
        self, sku: str, key: Key, stamp: int, network: Network, answer: availability_pb2.SkuAvailability
    ) -> availability_pb2.SkuAvailability:
        if len(self._entries) >= self._max_entries:
            self._entries.clear()  # rare (a catalog larger than the cache): start again
        self._entries[(sku, key)] = (stamp, network, answer)
        return answer

    def __len__(self) -> int:
        return len(self._entries)
