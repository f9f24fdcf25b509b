"""EventService: the reservation events and the audit trail, read page by page from their
Redis streams (`<prefix>:events`, written by the shards' journal script; `<prefix>:audit`,
see reservations/shard/audit_trail.py).

A page is at most MAX_PAGE entries after a stream id; a reader that waits (wait_ms) holds a
blocking XREAD for at most MAX_WAIT_MS, so no call outlives its bound. Filtering the audit
trail by subject looks at no more than MAX_SCANNED entries a call: a page may then come back
empty with `last_id` moved on, and the reader asks again from there.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import cast

import grpc
import redis.exceptions
from google.protobuf.message import DecodeError

from omnistock.gateway.grpc.convert import Limits, Problems
from omnistock.gateway.grpc.network_store import NetworkStore
from omnistock.gateway.grpc.servicers import Servicer, rpc
from omnistock.gateway.metrics import Metrics
from omnistock.protos.gen.omnistock.v1 import events_pb2, events_pb2_grpc
from omnistock.reservations.domain.errors import Unavailable
from omnistock.reservations.shard.audit_trail import AuditEntry
from omnistock.reservations.shard.journal import RedisKeys
from omnistock.reservations.shard.redis_connect import AsyncClient

log = logging.getLogger(__name__)

MAX_PAGE = 1_000
DEFAULT_PAGE = 100
MAX_WAIT_MS = 30_000
MAX_SCANNED = 10_000
"""Audit entries one call looks at when it filters by subject."""
MAX_PREFIX = 128
STREAM_ID = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?")
LATEST = "$"
"""`after` that reads only entries added after the call."""

Entries = list[tuple[bytes, dict[bytes, bytes]]]


def page_request(after: str, limit: int, wait_ms: int, subject_prefix: str = "") -> tuple[str, int]:
    """Check a page request: (the stream id to read after, the page size); INVALID_ARGUMENT
    naming every field that is wrong."""
    problems = Problems()
    if after not in ("", LATEST):
        found = STREAM_ID.fullmatch(after)
        if found is None or any(int(part or 0) >= 2**64 for part in found.groups()):
            problems.add("after", 'must be a stream id ("1733580000000-0"), "$" or empty')
        elif found.group(2) is None:
            after = f"{after}-0"
    if limit > MAX_PAGE:
        problems.add("limit", f"must be at most {MAX_PAGE}, got {limit}")
    if wait_ms > MAX_WAIT_MS:
        problems.add("wait_ms", f"must be at most {MAX_WAIT_MS} (30 s), got {wait_ms}")
    problems.check_text("subject_prefix", subject_prefix, MAX_PREFIX)
    problems.raise_if_any()
    return after, limit or DEFAULT_PAGE


def stream_id(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class EventServicer(Servicer, events_pb2_grpc.EventServiceServicer):
    SERVICE = events_pb2.DESCRIPTOR.services_by_name["EventService"]

    def __init__(
        self, network: NetworkStore, limits: Limits, metrics: Metrics, redis: AsyncClient, keys: RedisKeys
    ) -> None:
        super().__init__(network, limits, metrics)
        self.redis = redis
        self.keys = keys

    @rpc("ReadReservationEvents")
    async def ReadReservationEvents(
        self, request: events_pb2.ReadReservationEventsRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.ReadReservationEventsResponse:
        after, limit = page_request(request.after, request.limit, request.wait_ms)
        stream = self.keys.events
        start = await self._start(stream, after)
        entries = await self._read(stream, start, limit, request.wait_ms)
        response = events_pb2.ReadReservationEventsResponse(
            last_id=stream_id(entries[-1][0]) if entries else start
        )
        for raw_id, fields in entries:
            entry = response.entries.add(id=stream_id(raw_id))
            try:
                entry.event.ParseFromString(fields.get(b"e", b""))
            except DecodeError:  # not written by a shard: shown as an entry without an event
                log.warning("entry %s of %s is not a ReservationEvent", entry.id, stream)
                entry.ClearField("event")
        return response

    @rpc("ReadAuditEvents")
    async def ReadAuditEvents(
        self, request: events_pb2.ReadAuditEventsRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.ReadAuditEventsResponse:
        prefix = request.subject_prefix
        after, limit = page_request(request.after, request.limit, request.wait_ms, prefix)
        stream = self.keys.audit
        cursor = await self._start(stream, after)
        response = events_pb2.ReadAuditEventsResponse()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.wait_ms / 1000
        scanned = 0
        while True:
            wait_ms = max(0, round((deadline - loop.time()) * 1000))
            entries = await self._read(stream, cursor, limit, wait_ms)
            for raw_id, fields in entries:
                cursor = stream_id(raw_id)
                entry = AuditEntry.from_fields(fields)
                if entry.subject.startswith(prefix):
                    event = response.entries.add(
                        id=cursor,
                        by=entry.by,
                        action=entry.action,
                        subject=entry.subject,
                        detail=entry.detail,
                    )
                    event.at.seconds, millis = divmod(entry.at, 1000)
                    event.at.nanos = millis * 1_000_000
            scanned += len(entries)
            # Entries that all failed the filter: look further, or wait on, within the bounds.
            if response.entries or not entries or scanned >= MAX_SCANNED:
                break
        response.last_id = cursor
        return response

    async def _start(self, stream: str, after: str) -> str:
        """The id to read after: "$" is the stream's last entry now (so a reader that comes
        back with `last_id` misses nothing added in between), empty is the beginning."""
        if after != LATEST:
            return after or "0-0"
        try:
            last = cast(Entries, await self.redis.xrevrange(stream, count=1))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as error:
            raise _unavailable(error) from error
        return stream_id(last[0][0]) if last else "0-0"

    async def _read(self, stream: str, after: str, count: int, wait_ms: int) -> Entries:
        """Up to `count` entries after `after`; with none there, waits up to `wait_ms` for some
        (0: answers at once; redis-py's block=0 would wait for ever)."""
        try:
            found = cast(
                list[tuple[bytes, Entries]],
                await self.redis.xread({stream: after}, count=count, block=wait_ms or None),
            )
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as error:
            raise _unavailable(error) from error
        return found[0][1] if found else []


def _unavailable(error: BaseException) -> Unavailable:
    return Unavailable(f"the event streams cannot be read now ({type(error).__name__}); retry")
