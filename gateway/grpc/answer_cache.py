"""Availability answers kept serialized until their SKU or the network changes.

A product-listing page asks the same SKUs over and over, and most of them have not
changed since the last ask; building an answer costs tens of microseconds of Python per
SKU. An entry holds while the SKU's stamp in the network view (the view version of its
last change) and the network (replaced whole on every change) are the ones it was built
from.

Each entry is a serialized GetAvailabilityResponse holding that one SKU's answer. Protobuf
parses concatenated messages as one merged message (repeated fields appended, in order),
so a response is the entries of its SKUs joined, then its own fields (`response_tail`):
no message is built, copied or serialized per call.
"""

from __future__ import annotations

from omnistock.availability.network import Network
from omnistock.gateway.grpc.convert import to_timestamp
from omnistock.protos.gen.omnistock.v1 import availability_pb2

Key = tuple[str, bool]
"""(channel_id, include_nodes) of the ask."""


def fragment(answer: availability_pb2.SkuAvailability) -> bytes:
    """`answer` as a response of its own, ready to be joined with others."""
    return availability_pb2.GetAvailabilityResponse(skus=[answer]).SerializeToString()


class AnswerCache:
    def __init__(self, max_entries: int = 500_000) -> None:
        # An entry names its network by a number, not the object: a tuple of ints and bytes
        # is left alone by the garbage collector, so a full cache adds nothing to what each
        # full collection scans while every call in flight waits.
        self._entries: dict[tuple[str, Key], tuple[int, int, bytes]] = {}
        self._network: Network | None = None
        self._network_number = 0
        self._max_entries = max_entries
        self._tail: tuple[float, int, bytes] = (0.0, 0, b"")
        self.hits = 0
        self.misses = 0

    def get(self, sku: str, key: Key, stamp: int, network: Network) -> bytes | None:
        entry = self._entries.get((sku, key))
        if entry is None or entry[0] != stamp:
            self.misses += 1
            return None
        # Inline for the usual case, the network of the last call: a page asks per SKU.
        number = self._network_number if network is self._network else self._number(network)
        if entry[1] == number:
            self.hits += 1
            return entry[2]
        self.misses += 1
        return None

    def put(
        self, sku: str, key: Key, stamp: int, network: Network, answer: availability_pb2.SkuAvailability
    ) -> bytes:
        if len(self._entries) >= self._max_entries:
            self._entries.clear()  # rare (a catalog larger than the cache): start again
        built = fragment(answer)
        self._entries[(sku, key)] = (stamp, self._number(network), built)
        return built

    def _number(self, network: Network) -> int:
        """The number of `network` here: a new one for each network object seen in turn."""
        if network is not self._network:
            self._network = network
            self._network_number += 1
        return self._network_number

    def response_tail(self, as_of: float, version: int) -> bytes:
        """A view-served response's own fields (as_of, version), serialized; they change a few
        times a second, so the last ones are kept."""
        if self._tail[0] != as_of or self._tail[1] != version:
            tail = availability_pb2.GetAvailabilityResponse(as_of=to_timestamp(as_of), version=version)
            self._tail = (as_of, version, tail.SerializeToString())
        return self._tail[2]

    def __len__(self) -> int:
        return len(self._entries)
