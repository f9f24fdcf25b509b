"""`omnistock events`: the reservation events or, with --audit, the audit trail of stock,
network and key changes, each with who made it; --follow keeps reading until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import os
import shlex
from typing import Any

from omnistock.cli.common import EXIT_OK, TARGET_ENV, UsageError, until_interrupted
from omnistock.cli.output import Output, event_detail, event_name, local_time, printable, to_dict
from omnistock.client import DEFAULT_TARGET, OmnistockClient
from omnistock.protos.gen.omnistock.v1 import events_pb2

PAGE = 1_000
"""Entries asked for per call (the most a page holds)."""
FOLLOW_WAIT_MS = 10_000
"""How long one call of --follow waits for new entries before it asks again."""

HELP = "reservation events, or the audit trail (--audit), each with who made the change"
DESCRIPTION = (
    "Prints what is on the feed (the reservation events of every journal group's stream, merged)"
    " after --after (from the oldest entry kept without it), one line per event: time, type,"
    " reservation (part), who made the change and what it moved."
    " --audit prints the audit trail instead: time, action, subject, who and the change's detail;"
    " --subject keeps the entries whose subject starts with a prefix (a SKU, a node, a key name)."
    " --follow keeps reading as entries come (from now on without --after) until Ctrl-C. It ends"
    " with the cursor to continue after what it printed. --json prints one JSON object per line,"
    ' with the entry\'s id in the feed ("<group>/<stream id>").'
)


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--after",
        metavar="CURSOR",
        default=None,
        help="read on after this cursor (the one printed at the end), or from a stream id"
        ' ("1733580000000-0": a time); "$": only what comes next',
    )
    parser.add_argument("--follow", "-f", action="store_true", help="keep reading new entries until Ctrl-C")
    parser.add_argument("--audit", action="store_true", help="the audit trail instead of reservation events")
    parser.add_argument(
        "--subject", metavar="PREFIX", default="", help="with --audit: only subjects starting with PREFIX"
    )
    parser.add_argument(
        "--limit", type=_count, default=0, metavar="N", help="print at most N entries (0, the default: all)"
    )


def reservation_line(entry: events_pb2.ReservationEventEntry) -> str:
    event = entry.event
    where = f"{event.reservation_id}/p{event.partition}"
    columns = [local_time(event.at), event_name(event.type).ljust(15), where, f"by {event.by or '-'}"]
    detail = event_detail(event)
    return printable("  ".join([*columns, detail] if detail else columns))


def audit_line(entry: events_pb2.AuditEvent) -> str:
    columns = [
        local_time(entry.at),
        entry.action.ljust(22),
        entry.subject,
        f"by {entry.by or '-'}",
        entry.detail,
    ]
    return printable("  ".join(columns))


def json_line(entry: events_pb2.ReservationEventEntry | events_pb2.AuditEvent) -> str:
    """One object an event: a reservation event's fields with its id in the feed, or an audit entry."""
    data: dict[str, Any]
    if isinstance(entry, events_pb2.ReservationEventEntry):
        data = {"id": entry.id, **to_dict(entry.event)}
    else:
        data = to_dict(entry)
    return json.dumps(data, separators=(",", ":"))


class Reader:
    """Pages of the feed, printed as they come; remembers the cursor for a resume."""

    def __init__(self, client: OmnistockClient, args: argparse.Namespace, out: Output) -> None:
        self.client, self.args, self.out = client, args, out
        after = args.after
        self.last_id = after if after is not None else ("$" if args.follow else "")
        self.printed = 0

    async def page(self, wait_ms: int) -> int:
        """Read and print one page; the number of entries it had."""
        args = self.args
        limit = PAGE if args.limit <= 0 else min(PAGE, args.limit - self.printed)
        response: events_pb2.ReadReservationEventsResponse | events_pb2.ReadAuditEventsResponse
        if args.audit:
            response = await self.client.read_audit(self.last_id, limit, wait_ms, args.subject)
        else:
            response = await self.client.read_events(self.last_id, limit, wait_ms)
        for entry in response.entries:
            if self.out.as_json:
                text = json_line(entry)
            elif isinstance(entry, events_pb2.ReservationEventEntry):
                text = reservation_line(entry)
            else:
                text = audit_line(entry)
            print(text, file=self.out.stdout, flush=True)
        self.printed += len(response.entries)
        self.last_id = response.last_id
        return len(response.entries)

    def done(self) -> bool:
        return 0 < self.args.limit <= self.printed

    async def run(self) -> None:
        """Every page there is (a page that moved on without a match counts as more to read),
        then, with --follow, each new one as it comes."""
        while not self.done():
            before = self.last_id
            if not await self.page(0) and self.last_id == before:
                break
        while self.args.follow and not self.done():
            await self.page(FOLLOW_WAIT_MS)

    def resume_command(self) -> str:
        args = self.args
        parts = ["omnistock", "events"]
        if args.audit:
            parts.append("--audit")
        if args.subject:
            parts += ["--subject", args.subject]
        if args.follow:
            parts.append("--follow")
        if args.target != os.environ.get(TARGET_ENV, DEFAULT_TARGET):
            parts += ["--target", args.target]
        if args.json:
            parts.append("--json")
        parts += ["--after", self.last_id]
        return " ".join(shlex.quote(part) for part in parts)


async def cmd_events(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    if args.subject and not args.audit:
        raise UsageError("--subject filters the audit trail: add --audit")
    reader = Reader(client, args, out)
    if args.follow:
        out.note(f"following {'the audit trail' if args.audit else 'reservation events'}; Ctrl-C stops")
    reading = await until_interrupted(reader.run())
    if not reading.cancelled() and (error := reading.exception()) is not None:
        raise error  # run_client reports a refusal
    if reader.last_id and reader.last_id != "$":
        nouns = ("audit entry", "audit entries") if args.audit else ("event", "events")
        counted = f"{reader.printed} {nouns[reader.printed != 1]}"
        out.note(f"{counted}; read on after them with:\n  {reader.resume_command()}")
    return EXIT_OK
