"""The events feed over many streams: its cursor (what a reader is given as last_id and
gives back as after) and its pages (merged by stream id, cut by limit, nothing skipped or
given twice)."""

from __future__ import annotations

import random

import pytest

from omnistock.gateway.grpc.events_servicer import page_request
from omnistock.gateway.usecases.event_feed import (
    CURSOR_MARK,
    LATEST,
    BadCursor,
    Cursor,
    Feed,
    Position,
    max_cursor_chars,
)
from omnistock.reservations.domain.errors import InvalidArgument

GROUPS = Feed(tuple(str(group) for group in range(16)))
AUDIT = Feed(("shared", *(str(group) for group in range(16))))
NOW = 1_733_580_000_000


def test_a_cursor_reads_back_as_itself_and_is_compact() -> None:
    positions = tuple((NOW + 7 * group, group % 3) for group in range(16))
    cursor = Cursor(positions)
    text = cursor.text()
    assert text.startswith(CURSOR_MARK) and GROUPS.parse(text) == cursor
    assert len(text) < 60  # streams that keep pace cost a few bytes each
    far_apart = Cursor(((0, 0), (2**64 - 1, 2**64 - 1), *((NOW, 5),) * 14))
    assert GROUPS.parse(far_apart.text()) == far_apart
    assert len(far_apart.text()) <= max_cursor_chars(16)
    assert GROUPS.parse("") == GROUPS.start() == Cursor(((0, 0),) * 16)


def test_a_stream_id_starts_every_stream_from_it() -> None:
    assert GROUPS.parse("1733580000000-7") == Cursor(((NOW, 7),) * 16)
    assert AUDIT.parse("1733580000000") == Cursor(((NOW, 0),) * 17)
    assert GROUPS.parse(LATEST) == LATEST


@pytest.mark.parametrize(
    ("after", "says"),
    [
        ("yesterday", "must be the last_id of a page"),
        ("1733580000000-", "must be the last_id of a page"),
        ("18446744073709551616-0", "2^64"),
        (CURSOR_MARK, "no cursor"),
        (CURSOR_MARK + "not base64!", "no cursor"),
        (CURSOR_MARK + "A" * 2_000, "no cursor"),  # bounded before it is decoded
        (AUDIT.start().text(), "a cursor of 17 streams; this feed has 16"),
        (Cursor(((NOW, 0),) * 15).text(), "a cursor of 15 streams"),
    ],
)
def test_a_malformed_cursor_is_refused(after: str, says: str) -> None:
    with pytest.raises(BadCursor, match=says.replace("^", r"\^")):
        GROUPS.parse(after)


def test_a_damaged_or_altered_cursor_is_refused() -> None:
    text = Cursor(tuple((NOW + group, group) for group in range(16))).text()
    refused = 0
    for cut in range(len(CURSOR_MARK) + 1, len(text)):
        with pytest.raises(BadCursor):
            GROUPS.parse(text[:cut])
        refused += 1
    assert refused > 10
    with pytest.raises(BadCursor):
        GROUPS.parse(text + "AA")  # bytes after the last position
    # The same bytes with other padding bits: a text no cursor makes.
    padded = next(
        made
        for seq in (0, 2**7, 2**14, 2**21)
        if len(made := Cursor(((NOW, seq),) * 16).text()[len(CURSOR_MARK) :]) % 4 in (2, 3)
    )
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    flipped = padded[:-1] + alphabet[alphabet.index(padded[-1]) ^ 1]
    assert isinstance(GROUPS.parse(CURSOR_MARK + padded), Cursor)
    with pytest.raises(BadCursor):
        GROUPS.parse(CURSOR_MARK + flipped)


def reads(streams: list[list[Position]]) -> list[list[tuple[Position, str]]]:
    """Entries as a stream hands them: each with its id, and fields naming it."""
    return [
        [(position, f"{index}/{position}") for position in stream] for index, stream in enumerate(streams)
    ]


def test_a_page_merges_the_streams_by_id_and_breaks_ties_by_stream() -> None:
    feed = Feed(("a", "b", "c"))
    page = feed.page(
        feed.start(),
        reads([[(NOW, 0), (NOW + 5, 0)], [(NOW - 3, 0), (NOW, 0)], [(NOW, 1)]]),
        limit=10,
    )
    assert [feed.entry_id(entry) for entry in page.entries] == [
        f"b/{NOW - 3}-0",
        f"a/{NOW}-0",
        f"b/{NOW}-0",
        f"c/{NOW}-1",
        f"a/{NOW + 5}-0",
    ]
    assert page.cursor == Cursor(((NOW + 5, 0), (NOW, 0), (NOW, 1)))


def test_a_page_cut_by_limit_moves_each_stream_only_past_what_it_kept() -> None:
    feed = Feed(("a", "b", "c"))
    start = Cursor(((NOW, 0), (0, 0), (NOW - 100, 0)))
    page = feed.page(start, reads([[(NOW + 1, 0), (NOW + 4, 0)], [(NOW + 2, 0), (NOW + 3, 0)], []]), limit=2)
    assert [feed.entry_id(entry) for entry in page.entries] == [f"a/{NOW + 1}-0", f"b/{NOW + 2}-0"]
    # a's second and b's second entry were read but not kept: read again next page.
    assert page.cursor == Cursor(((NOW + 1, 0), (NOW + 2, 0), (NOW - 100, 0)))


def test_paging_through_many_streams_gives_every_entry_once() -> None:
    chance = random.Random(28)
    feed = GROUPS
    streams: list[list[Position]] = []
    for _ in range(feed.streams):
        ms, stream = NOW, list[Position]()
        for _ in range(chance.randrange(0, 40)):
            ms += chance.randrange(0, 3)
            stream.append((ms, len(stream)))
        streams.append(stream)
    everything = sorted(f"{group}/{ms}-{seq}" for group, stream in enumerate(streams) for ms, seq in stream)
    cursor, seen = feed.start(), []
    for _ in range(1_000):
        limit = chance.randrange(1, 8)
        # What XREAD COUNT limit gives after each stream's position.
        after = [[p for p in stream if p > cursor.positions[i]][:limit] for i, stream in enumerate(streams)]
        page = feed.page(cursor, reads(after), limit)
        assert len(page.entries) <= limit
        if not page.entries:
            assert page.cursor == cursor
            break
        seen += [feed.entry_id(entry) for entry in page.entries]
        given_back = feed.parse(page.cursor.text())  # as a client gives it back
        assert isinstance(given_back, Cursor)
        cursor = given_back
    assert sorted(seen) == everything and len(set(seen)) == len(seen)
    assert cursor == Cursor(tuple(stream[-1] if stream else (0, 0) for stream in streams))


def test_a_page_never_gives_what_lies_before_the_cursor() -> None:
    feed = Feed(("a", "b"))
    page = feed.page(Cursor(((NOW, 5), (0, 0))), reads([[(NOW, 5), (NOW, 6)], []]), limit=10)
    assert [feed.entry_id(entry) for entry in page.entries] == [f"a/{NOW}-6"]


def test_a_feed_needs_distinct_labels() -> None:
    with pytest.raises(ValueError, match="distinct"):
        Feed(("0", "0"))


def test_a_page_request_is_checked_and_every_wrong_field_named() -> None:
    assert page_request(GROUPS, "", 0, 0) == (GROUPS.start(), 100)
    assert page_request(GROUPS, "$", 1_000, 30_000) == ("$", 1_000)
    assert page_request(AUDIT, "1733580000000-7", 5, 0, "SKU-1") == (Cursor(((NOW, 7),) * 17), 5)
    with pytest.raises(InvalidArgument) as refused:
        page_request(GROUPS, "yesterday", 1_001, 30_001, "SKU\x1b")
    assert [field for field, _ in refused.value.violations] == ["after", "limit", "wait_ms", "subject_prefix"]
    with pytest.raises(InvalidArgument) as refused:
        page_request(GROUPS, AUDIT.start().text(), 1, 0)  # the audit trail's cursor
    assert [field for field, _ in refused.value.violations] == ["after"]
