"""EventService: the reservation events and the audit trail, each read page by page as one
feed over many Redis streams (gateway/usecases/event_feed.py): the reservation events of
every journal group (`RedisKeys.event_streams`, written by the shards' journal script with
the journal entries), and the audit trail's shared stream of network and key changes and
every group's stream of stock changes (`RedisKeys.audit_streams`, see
reservations/shard/audit_trail.py).

A page is at most MAX_PAGE entries after a cursor; a reader that waits (wait_ms) waits at
most MAX_WAIT_MS, so no call outlives its bound. On a single Redis one XREAD reads every
stream (and blocks to wait); a Redis Cluster refuses a multi-key XREAD whose streams lie in
several slots, so there each stream is read on its own and a wait polls every POLL_SECONDS.
Filtering the audit trail by subject looks at no more than MAX_SCANNED entries a call: a
page may then come back empty with `last_id` moved on, and the reader asks again from there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Literal, cast

import grpc
import redis.asyncio.cluster
import redis.exceptions
from google.protobuf.message import DecodeError

from omnistock.gateway.grpc.convert import Limits, Problems
from omnistock.gateway.grpc.network_store import NetworkStore
from omnistock.gateway.grpc.servicers import Servicer, rpc
from omnistock.gateway.metrics import Metrics
from omnistock.gateway.usecases.event_feed import (
    BadCursor,
    Cursor,
    Feed,
    Page,
    Position,
    parse_stream_id,
)
from omnistock.protos.gen.omnistock.v1 import events_pb2, events_pb2_grpc
from omnistock.reservations.domain.errors import Unavailable
from omnistock.reservations.shard.audit_trail import AuditEntry
from omnistock.reservations.shard.journal import JOURNAL_GROUPS, RedisKeys
from omnistock.reservations.shard.redis_connect import AsyncClient

log = logging.getLogger(__name__)

MAX_PAGE = 1_000
DEFAULT_PAGE = 100
MAX_WAIT_MS = 30_000
MAX_SCANNED = 10_000
"""Audit entries one call looks at when it filters by subject."""
MAX_PREFIX = 128
POLL_SECONDS = 0.05
"""How often a wait on a Redis Cluster looks for new entries (it cannot block on them all)."""
SHARED_LABEL = "shared"
"""Labels the audit trail's shared stream in entry ids; a group's streams by its number."""

Fields = dict[bytes, bytes]
Entries = list[tuple[bytes, Fields]]
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def page_request(
    feed: Feed, after: str, limit: int, wait_ms: int, subject_prefix: str = ""
) -> tuple[Cursor | Literal["$"], int]:
    """Check a page request: (the cursor to read after, or "$"; the page size);
    INVALID_ARGUMENT naming every field that is wrong."""
    problems = Problems()
    cursor: Cursor | Literal["$"] = feed.start()
    try:
        cursor = feed.parse(after)
    except BadCursor as error:
        problems.add("after", str(error))
    if limit > MAX_PAGE:
        problems.add("limit", f"must be at most {MAX_PAGE}, got {limit}")
    if wait_ms > MAX_WAIT_MS:
        problems.add("wait_ms", f"must be at most {MAX_WAIT_MS} (30 s), got {wait_ms}")
    problems.check_text("subject_prefix", subject_prefix, MAX_PREFIX)
    problems.raise_if_any()
    return cursor, limit or DEFAULT_PAGE


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class StreamFeed:
    """A feed's streams in Redis (one server or a cluster), read page by page."""

    def __init__(self, client: AsyncClient, streams: Sequence[str], labels: Sequence[str]) -> None:
        if len(streams) != len(labels):
            raise ValueError("one label per stream")
        self.redis = client
        self.streams = list(streams)
        self.feed = Feed(tuple(labels))
        self._index = {stream: index for index, stream in enumerate(self.streams)}
        self._cluster = isinstance(client, redis.asyncio.cluster.RedisCluster)

    def parse(
        self, after: str, limit: int, wait_ms: int, subject_prefix: str = ""
    ) -> tuple[Cursor | Literal["$"], int]:
        return page_request(self.feed, after, limit, wait_ms, subject_prefix)

    async def start(self, after: Cursor | Literal["$"]) -> Cursor:
        """The cursor to read after: "$" is each stream's last entry now (so a reader that
        comes back with `last_id` misses nothing added in between)."""
        if isinstance(after, Cursor):
            return after
        try:
            if self._cluster:
                newest = await asyncio.gather(
                    *(self.redis.xrevrange(stream, count=1) for stream in self.streams)
                )
            else:
                pipe = self.redis.pipeline(transaction=False)
                for stream in self.streams:
                    pipe.xrevrange(stream, count=1)
                newest = await pipe.execute()
        except REDIS_DOWN as error:
            raise _unavailable(error) from error
        return Cursor(
            tuple(
                parse_stream_id(_text(last[0][0])) if last else (0, 0) for last in cast(list[Entries], newest)
            )
        )

    async def page(self, cursor: Cursor, limit: int, wait_ms: int) -> Page[Fields]:
        """Up to `limit` entries after `cursor`, merged over the streams; with none there,
        waits up to `wait_ms` for some (0: answers at once)."""
        try:
            if self._cluster:
                read = await self._read_each(cursor, limit, wait_ms)
            else:
                read = await self._read_all(cursor, limit, wait_ms)
        except REDIS_DOWN as error:
            raise _unavailable(error) from error
        return self.feed.page(cursor, read, limit)

    async def _read_all(
        self, cursor: Cursor, limit: int, wait_ms: int
    ) -> list[list[tuple[Position, Fields]]]:
        """One XREAD of every stream (redis-py's block=0 would wait for ever: None answers at once)."""
        found = await self.redis.xread(
            dict(zip(self.streams, cursor.stream_ids(), strict=True)), count=limit, block=wait_ms or None
        )
        read: list[list[tuple[Position, Fields]]] = [[] for _ in self.streams]
        for stream, entries in _xread_answer(found):
            read[self._index[_text(stream)]] = _positioned(entries)
        return read

    async def _read_each(
        self, cursor: Cursor, limit: int, wait_ms: int
    ) -> list[list[tuple[Position, Fields]]]:
        """Each stream on its own (its own slot), all at once; to wait, again every POLL_SECONDS."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_ms / 1000
        ids = cursor.stream_ids()
        while True:
            answers = await asyncio.gather(
                *(
                    self.redis.xread({stream: after}, count=limit)
                    for stream, after in zip(self.streams, ids, strict=True)
                )
            )
            read = [
                [entry for _, entries in _xread_answer(found) for entry in _positioned(entries)]
                for found in answers
            ]
            left = deadline - loop.time()
            if any(read) or left <= 0:
                return read
            await asyncio.sleep(min(POLL_SECONDS, left))


def _xread_answer(found: Any) -> list[tuple[bytes | str, Entries]]:
    """XREAD's answer as (stream, entries) pairs: a list in RESP2, a map in RESP3."""
    if not found:
        return []
    if isinstance(found, dict):
        return [(stream, entries) for stream, entries in found.items()]
    return [(stream, entries) for stream, entries in found]


def _positioned(entries: Entries) -> list[tuple[Position, Fields]]:
    return [(parse_stream_id(_text(raw_id)), fields) for raw_id, fields in entries]


class EventServicer(Servicer, events_pb2_grpc.EventServiceServicer):
    SERVICE = events_pb2.DESCRIPTOR.services_by_name["EventService"]

    def __init__(
        self, network: NetworkStore, limits: Limits, metrics: Metrics, redis: AsyncClient, keys: RedisKeys
    ) -> None:
        super().__init__(network, limits, metrics)
        groups = [str(group) for group in range(JOURNAL_GROUPS)]
        self.reservation_events = StreamFeed(redis, keys.event_streams, groups)
        self.audit_trail = StreamFeed(redis, keys.audit_streams, [SHARED_LABEL, *groups])

    @rpc("ReadReservationEvents")
    async def ReadReservationEvents(
        self, request: events_pb2.ReadReservationEventsRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.ReadReservationEventsResponse:
        feed = self.reservation_events
        after, limit = feed.parse(request.after, request.limit, request.wait_ms)
        page = await feed.page(await feed.start(after), limit, request.wait_ms)
        response = events_pb2.ReadReservationEventsResponse(last_id=page.cursor.text())
        for found in page.entries:
            entry = response.entries.add(id=feed.feed.entry_id(found))
            try:
                entry.event.ParseFromString(found.fields.get(b"e", b""))
            except DecodeError:  # not written by a shard: shown as an entry without an event
                log.warning("entry %s of %s is not a ReservationEvent", entry.id, feed.streams[found.stream])
                entry.ClearField("event")
        return response

    @rpc("ReadAuditEvents")
    async def ReadAuditEvents(
        self, request: events_pb2.ReadAuditEventsRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.ReadAuditEventsResponse:
        feed = self.audit_trail
        prefix = request.subject_prefix
        after, limit = feed.parse(request.after, request.limit, request.wait_ms, prefix)
        cursor = await feed.start(after)
        response = events_pb2.ReadAuditEventsResponse()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.wait_ms / 1000
        scanned = 0
        while True:
            wait_ms = max(0, round((deadline - loop.time()) * 1000))
            page = await feed.page(cursor, limit, wait_ms)
            cursor = page.cursor
            for found in page.entries:
                entry = AuditEntry.from_fields(found.fields)
                if entry.subject.startswith(prefix):
                    event = response.entries.add(
                        id=feed.feed.entry_id(found),
                        by=entry.by,
                        action=entry.action,
                        subject=entry.subject,
                        detail=entry.detail,
                    )
                    event.at.seconds, millis = divmod(entry.at, 1000)
                    event.at.nanos = millis * 1_000_000
            scanned += len(page.entries)
            # Entries that all failed the filter: look further, or wait on, within the bounds.
            if response.entries or not page.entries or scanned >= MAX_SCANNED:
                break
        response.last_id = cursor.text()
        return response


def _unavailable(error: BaseException) -> Unavailable:
    return Unavailable(f"the event streams cannot be read now ({type(error).__name__}); retry")
