"""One feed over many streams: the reservation events of every journal group, or the audit
trail's shared stream and every group's, read as one.

A reader holds a cursor, one position (a stream id: ms, seq) per stream in a fixed order,
given to it as `last_id` and given back as `after`. A page reads up to `limit` entries after
the cursor from every stream, merges them by stream id and keeps the first `limit`; each
stream's position moves only to the last entry kept from it, so what was read but not kept
is read again by the next page: nothing is skipped and nothing is given twice. Order within
a stream is kept; across streams entries are interleaved by their ids (the time they were
added, on the clock of the Redis that holds each stream).

Pure: the Redis side (gateway/grpc/events_servicer.py) reads the streams and hands the
entries in.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

Position = tuple[int, int]
"""A stream id: (milliseconds, sequence)."""
OLDEST: Position = (0, 0)
"""Before every entry: reading after it starts from the oldest entry kept."""
LATEST: Literal["$"] = "$"
"""`after` that reads only entries added after the call: each stream's last id now."""
CURSOR_MARK = "c1."
"""Starts every cursor's text: a stream id never does, and a new layout gets a new mark."""
MAX_STREAMS = 64
MAX_PART = 2**64
"""A stream id's parts are 64-bit."""
STREAM_ID = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?")
CURSOR_TEXT = re.compile(r"[A-Za-z0-9_-]+")

Fields = TypeVar("Fields")


class BadCursor(ValueError):
    """`after` is not a position of this feed; the message says what is wrong with it."""


def parse_stream_id(text: str) -> Position:
    """A stream id ("1733580000000-0", or "1733580000000" for its sequence 0)."""
    found = STREAM_ID.fullmatch(text)
    if found is None:
        raise BadCursor(f"{text[:40]!r} is no stream id")
    ms, seq = int(found.group(1)), int(found.group(2) or 0)
    if ms >= MAX_PART or seq >= MAX_PART:
        raise BadCursor("a stream id's parts are at most 2^64-1")
    return ms, seq


def stream_id_text(position: Position) -> str:
    return f"{position[0]}-{position[1]}"


def _varint(value: int, out: bytearray) -> None:
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    """The number at `at` and where the next one starts; at most 10 bytes (64 bits)."""
    value = shift = 0
    for index in range(at, min(at + 10, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    raise BadCursor("it is cut short or damaged")


@dataclass(frozen=True, slots=True)
class Cursor:
    """One position per stream of a feed, in the feed's order."""

    positions: tuple[Position, ...]

    def text(self) -> str:
        """Compact: the newest position's ms, then each position as one more than its distance
        below it (small while the streams keep pace) and its sequence, or 0 alone for a stream
        not read yet (most of them in a small network), as varints in base64url."""
        newest = max(ms for ms, _ in self.positions)
        data = bytearray()
        _varint(len(self.positions), data)
        _varint(newest, data)
        for ms, seq in self.positions:
            if (ms, seq) == OLDEST:
                data.append(0)
                continue
            _varint(newest - ms + 1, data)
            _varint(seq, data)
        return CURSOR_MARK + base64.urlsafe_b64encode(bytes(data)).decode().rstrip("=")

    def stream_ids(self) -> list[str]:
        """Each stream's position as Redis takes it (XREAD's ids)."""
        return [stream_id_text(position) for position in self.positions]


def max_cursor_chars(streams: int) -> int:
    """The longest text a cursor of `streams` positions can have (10 bytes a varint)."""
    most_bytes = 2 * 10 + streams * 20
    return len(CURSOR_MARK) + -(-most_bytes * 4 // 3)


def _decode_cursor(text: str, streams: int) -> Cursor:
    body = text[len(CURSOR_MARK) :]
    if len(text) > max_cursor_chars(streams) or not CURSOR_TEXT.fullmatch(body):
        raise BadCursor("is no cursor of this feed (pass back the last_id of a page unchanged)")
    try:
        data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise BadCursor("is a damaged cursor (pass back the last_id of a page unchanged)") from None
    count, at = _read_varint(data, 0)
    if count != streams:
        raise BadCursor(f"is a cursor of {count} streams; this feed has {streams}")
    newest, at = _read_varint(data, at)
    positions: list[Position] = []
    for _ in range(count):
        below, at = _read_varint(data, at)
        if below == 0:
            positions.append(OLDEST)
            continue
        seq, at = _read_varint(data, at)
        if below - 1 > newest or seq >= MAX_PART:
            raise BadCursor("is a damaged cursor (pass back the last_id of a page unchanged)")
        positions.append((newest - below + 1, seq))
    cursor = Cursor(tuple(positions))
    # One text per cursor: anything else (padding bits, over-long numbers, bytes after the
    # end) was not made here.
    if at != len(data) or newest >= MAX_PART or cursor.text() != text:
        raise BadCursor("is a damaged cursor (pass back the last_id of a page unchanged)")
    return cursor


@dataclass(frozen=True, slots=True)
class FeedEntry(Generic[Fields]):
    """An entry of one of the feed's streams."""

    stream: int
    """Its stream's place in the feed."""
    position: Position
    fields: Fields


@dataclass(frozen=True, slots=True)
class Page(Generic[Fields]):
    entries: list[FeedEntry[Fields]]
    """Oldest first, by stream id; ties in the feed's stream order."""
    cursor: Cursor
    """Where the next page starts."""


@dataclass(frozen=True, slots=True)
class Feed:
    """The streams of one feed, each named in entry ids by its label."""

    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if not 0 < len(self.labels) <= MAX_STREAMS or len(set(self.labels)) != len(self.labels):
            raise ValueError(f"a feed has 1..{MAX_STREAMS} streams with distinct labels")

    @property
    def streams(self) -> int:
        return len(self.labels)

    def start(self) -> Cursor:
        return Cursor((OLDEST,) * self.streams)

    def parse(self, after: str) -> Cursor | Literal["$"]:
        """The cursor `after` names: "" the oldest entries, a stream id that id in every
        stream (a reader may start from a time), a cursor's text itself; "$" is left to the
        caller, which alone knows each stream's last id. BadCursor when it is none of these."""
        if after == LATEST:
            return LATEST
        if not after:
            return self.start()
        if after.startswith(CURSOR_MARK):
            return _decode_cursor(after, self.streams)
        if STREAM_ID.fullmatch(after) is None:
            raise BadCursor(
                'must be the last_id of a page, a stream id ("1733580000000-0" or "1733580000000"),'
                ' "$" or empty'
            )
        return Cursor((parse_stream_id(after),) * self.streams)

    def entry_id(self, entry: FeedEntry[Any]) -> str:
        """Unique across the feed's streams: "<label>/<ms>-<seq>"."""
        return f"{self.labels[entry.stream]}/{stream_id_text(entry.position)}"

    def page(
        self, cursor: Cursor, read: Sequence[Sequence[tuple[Position, Fields]]], limit: int
    ) -> Page[Fields]:
        """The first `limit` of the entries read after `cursor` (read[i]: stream i's, oldest
        first), merged by stream id; each stream's position moved to the last kept from it."""
        if len(read) != self.streams or len(cursor.positions) != self.streams:
            raise ValueError(f"a page of this feed reads {self.streams} streams")
        merged = sorted(
            (
                FeedEntry(stream, position, fields)
                for stream, entries in enumerate(read)
                for position, fields in entries
                if position > cursor.positions[stream]
            ),
            key=lambda entry: (entry.position, entry.stream),
        )
        kept = merged[:limit]
        positions = list(cursor.positions)
        for entry in kept:  # oldest first: each stream ends at its last kept entry
            positions[entry.stream] = entry.position
        return Page(kept, Cursor(tuple(positions)))
