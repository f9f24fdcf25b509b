"""`omnistock watch`: the live availability feed, printed as it comes, and how to resume it."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
from typing import IO

from omnistock.cli.common import EXIT_OK, EXIT_REFUSED, TARGET_ENV, count_of, until_interrupted
from omnistock.cli.output import Output, local_time, status_name, to_dict
from omnistock.client import DEFAULT_TARGET, OmnistockClient, OmnistockRpcError
from omnistock.protos.gen.omnistock.v1 import availability_pb2

STATUS_COLORS = {"IN_STOCK": "32", "LOW_STOCK": "33", "OUT_OF_STOCK": "31"}


class WatchPrinter:
    """Prints a watch stream: JSON lines, or one aligned line per change with status crossings
    marked `OLD -> NEW`. A catch-up of more than `summarise_over` SKUs is summarised by status
    in text unless `full`."""

    def __init__(
        self, out: Output, color: bool = False, full: bool = False, summarise_over: int = 50
    ) -> None:
        self.out = out
        self.color = color
        self.full = full
        self.summarise_over = summarise_over
        self.version = 0
        self.updates = 0
        self.last: dict[str, int] = {}
        """Available last printed per SKU, to say what it was."""
        self.hinted = False

    def paint(self, text: str, status: str) -> str:
        code = STATUS_COLORS.get(status)
        return f"\033[1;{code}m{text}\033[0m" if self.color and code else text

    def change_cells(self, change: availability_pb2.AvailabilityChange) -> tuple[str, str]:
        status = status_name(change.status) if change.status else ""
        previous = status_name(change.previous_status) if change.previous_status else ""
        was = self.last.get(change.sku)
        amount = f"available {change.available}" + (
            f" (was {was})" if was is not None and was != change.available else ""
        )
        if previous and status and previous != status:
            return self.paint(f"{previous} -> {status}", status), amount
        return status, amount

    def format(self, update: availability_pb2.WatchAvailabilityResponse) -> str:
        head = f"version {update.version}, as of {local_time(update.as_of)}"
        changes = list(update.changes)
        if update.catch_up:
            head += f" (catch-up: {count_of(changes, 'SKU')})"
        if update.catch_up and not self.full and len(changes) > self.summarise_over:
            by_status: dict[str, int] = {}
            for change in changes:
                if change.status:
                    key = status_name(change.status)
                else:
                    key = "with stock" if change.available else "without stock"
                by_status[key] = by_status.get(key, 0) + 1
                self.last[change.sku] = change.available
            counts = ", ".join(f"{key} {count}" for key, count in sorted(by_status.items()))
            hint = "" if self.hinted else "  (--full lists every SKU)"
            self.hinted = True
            return f"{head}\n  {counts}{hint}"
        cells = [(change.sku, *self.change_cells(change)) for change in changes]
        for change in changes:
            self.last[change.sku] = change.available
        sku_width = max((len(sku) for sku, _, _ in cells), default=0)
        status_width = max((len(_plain(status)) for _, status, _ in cells), default=0)
        lines = [head]
        for sku, status, amount in cells:
            parts = [sku.ljust(sku_width)]
            if status_width:
                parts.append(status + " " * (status_width - len(_plain(status))))
            lines.append("  " + "  ".join([*parts, amount]))
        return "\n".join(lines)

    def show(self, update: availability_pb2.WatchAvailabilityResponse) -> None:
        self.version = update.version
        self.updates += 1
        if self.out.as_json:
            print(json.dumps(to_dict(update), separators=(",", ":")), file=self.out.stdout, flush=True)
        else:
            print(self.format(update), file=self.out.stdout, flush=True)


ANSI = re.compile(r"\033\[[0-9;]*m")


def _plain(text: str) -> str:
    return ANSI.sub("", text)


def resume_command(args: argparse.Namespace, version: int) -> str:
    parts = ["omnistock", "watch"]
    if len(args.skus) <= 10:
        parts += args.skus
    else:
        parts.append(f"<the same {len(args.skus)} SKUs>")
    if args.channel:
        parts += ["--channel", args.channel]
    if args.target != os.environ.get(TARGET_ENV, DEFAULT_TARGET):
        parts += ["--target", args.target]
    if args.json:
        parts.append("--json")
    parts += ["--from-version", str(version)]
    return " ".join(part if part.startswith("<") else shlex.quote(part) for part in parts)


def use_color(stream: IO[str]) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


async def cmd_watch(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    printer = WatchPrinter(out, color=use_color(out.stdout), full=args.full)
    printer.version = args.from_version
    watched = f"{count_of(args.skus, 'SKU')}" if args.skus else "every SKU"
    through = f" through channel {args.channel}" if args.channel else " (free units network-wide)"
    out.note(f"watching {watched}{through}; Ctrl-C stops")

    async def consume() -> None:
        async for update in client.watch_availability(args.skus, args.channel or "", args.from_version):
            printer.show(update)

    def resume_hint(ended: str) -> None:
        if printer.updates:
            command = resume_command(args, printer.version)
            out.note(f"{ended} at version {printer.version}; resume with:\n  {command}")
        else:
            out.note(f"{ended} before any update arrived")

    feed = await until_interrupted(consume())
    if feed.cancelled():
        resume_hint("stopped")
        return EXIT_OK
    error = feed.exception()
    if error is None:
        resume_hint("the service ended the feed")
        return EXIT_REFUSED
    if isinstance(error, OmnistockRpcError) and printer.updates:
        code = out.rpc_error(error)
        resume_hint("the feed broke")
        return code
    raise error
