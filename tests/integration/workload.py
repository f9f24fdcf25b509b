"""A checkout workload for tests that change the service under it (moves, failovers): callers
that reserve, read availability and confirm, through any number of gateways, keeping what was
acknowledged and every refusal, so a test can check afterwards that nothing acknowledged was
lost and that the only refusals were the ones allowed."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import grpc

from omnistock.client import OmnistockClient, OmnistockRpcError, line
from omnistock.protos.gen.omnistock.v1 import reservation_pb2

HELD = reservation_pb2.RESERVATION_STATE_HELD
CONFIRMED = reservation_pb2.RESERVATION_STATE_CONFIRMED


@dataclass
class Refusal:
    method: str
    code: grpc.StatusCode
    message: str
    retry_delay: float | None
    at: float
    """time.monotonic() of the refusal."""


@dataclass
class Workload:
    clients: Sequence[OmnistockClient]
    skus: Sequence[str]
    node_id: str
    tag: str
    retry_unavailable: bool = False
    """Retry a call answered UNAVAILABLE (same ids: safe), as a client should: after its
    RetryInfo's delay, or 0.2 s when the connection broke. The refusal is still recorded."""
    acknowledged: dict[str, int] = field(default_factory=dict)
    """Reservation id -> units held, for every Reserve that was answered OK."""
    confirmed: set[str] = field(default_factory=set)
    refusals: list[Refusal] = field(default_factory=list)
    calls: int = 0
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    """Once set, a refused call is no longer retried (the run is ending)."""

    async def _call(self, method: str, make: Callable[[], Awaitable[object]]) -> object:
        while True:
            self.calls += 1
            try:
                return await make()
            except OmnistockRpcError as error:
                self.refusals.append(
                    Refusal(method, error.code, error.message, error.retry_delay, time.monotonic())
                )
                if self._stop.is_set() or not (
                    self.retry_unavailable and error.code is grpc.StatusCode.UNAVAILABLE
                ):
                    return None
                await asyncio.sleep(error.retry_delay or 0.2)  # no RetryInfo: the connection broke

    async def caller(self, number: int, stop: asyncio.Event) -> None:
        client = self.clients[number % len(self.clients)]
        while not stop.is_set():
            n = next(self._ids)
            reservation_id = f"{self.tag}-{number}-{n}"
            first, second = self.skus[n % len(self.skus)], self.skus[(n * 7 + 3) % len(self.skus)]
            lines = [line(first, self.node_id, 1)]
            if n % 3 == 0 and second != first:
                lines.append(line(second, self.node_id, 1))
            held = await self._call(
                "Reserve", partial(client.reserve, reservation_id, lines, ttl_seconds=600)
            )
            if held is not None:
                self.acknowledged[reservation_id] = len(lines)
                if n % 4 == 0:
                    confirmed = await self._call("Confirm", partial(client.confirm, reservation_id))
                    if confirmed is not None:
                        self.confirmed.add(reservation_id)
            await self._call("GetAvailability", partial(client.availability, [first], include_nodes=True))

    async def run_until(self, stop: asyncio.Event, callers: int = 6) -> None:
        self._stop = stop
        await asyncio.gather(*(self.caller(i, stop) for i in range(callers)))

    async def missing(self, client: OmnistockClient) -> list[str]:
        """Acknowledged reservations the service does not have as acknowledged (held, or
        confirmed when the confirm was acknowledged)."""
        lost = []
        for reservation_id in self.acknowledged:
            try:
                reservation = await client.get_reservation(reservation_id)
            except OmnistockRpcError:
                lost.append(reservation_id)
                continue
            wanted = (CONFIRMED,) if reservation_id in self.confirmed else (HELD, CONFIRMED)
            if reservation.state not in wanted:
                lost.append(reservation_id)
        return lost
