"""Named crash points: a test arms one from the environment, and the process dies there as if
killed (no clean-up, no reply), at the worst moment of a multi-part change.

    OMNISTOCK_CRASH_POINTS="carry.between_parts"      die the first time it is passed
    OMNISTOCK_CRASH_POINTS="reserve.after_parts@3"    die the third time
    OMNISTOCK_CRASH_DIR=/tmp/x                        die only once per point in all processes
                                                      (a restarted shard does not die again)

Tests only: nothing is armed unless the variable is set, and then passing a point costs a
dict lookup. Every name is listed in POINTS, so a test cannot arm a point that does not exist.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "OMNISTOCK_CRASH_POINTS"
ONCE_DIR_ENV = "OMNISTOCK_CRASH_DIR"
EXIT_CODE = 86
"""The exit code of a process that died at a crash point (tests tell it from other deaths)."""

POINTS = {
    "reserve.after_claim": "gateway: the Reserve's record is PENDING at its home, no part placed yet",
    "reserve.after_parts": "gateway: every part placed, the decision not yet asked for",
    "reserve.before_reply": "gateway: the Reserve decided, the client not yet answered",
    "decide.before_carry": "gateway: a decision journaled at the home, no step carried to other shards",
    "carry.between_parts": "gateway: one part took its step, the others not yet",
    "carry.before_mark": "gateway: every step taken, the home not yet told",
    "shard.before_journal": "shard: a batch decided in memory, not journaled",
    "shard.after_journal": "shard: a batch with a decision journaled, not answered",
    "shard.recovery": "shard: partitions reloaded, nothing yet finished or served",
    "shard.before_release": "shard: asked to give a moving partition up, nothing done yet",
    "shard.after_release": "shard: a moving partition snapshotted and given up in Redis, still in memory",
    "shard.before_adopt": "shard: asked to take a moved partition over, not claimed yet",
    "scale.after_mark": "gateway: a partition marked as moving, its shard not yet told to give it up",
    "scale.after_release": "gateway: a partition given up by its shard, its new owner not yet placed",
    "scale.after_placement": "gateway: a partition placed on its new shard, not yet taken over there",
}


def _parse(text: str) -> dict[str, int]:
    armed: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, nth = item.partition("@")
        if name not in POINTS:
            raise ValueError(f"{ENV}: unknown crash point {name!r}; known: {', '.join(sorted(POINTS))}")
        armed[name] = int(nth or 1)
    return armed


_armed = _parse(os.environ.get(ENV, ""))
_passes: Counter[str] = Counter()
active = bool(_armed)
"""Whether any point is armed in this process (callers skip work that only a point needs)."""


def armed(name: str) -> bool:
    return name in _armed


def crash_point(name: str) -> None:
    """Die here if the point is armed and this is its n-th pass."""
    if name not in _armed:
        return
    _passes[name] += 1
    if _passes[name] != _armed[name] or not _first_anywhere(name):
        return
    log.error("crash point %s: exiting with %d", name, EXIT_CODE)
    sys.stderr.flush()
    os._exit(EXIT_CODE)


def _first_anywhere(name: str) -> bool:
    """With a once-dir, only the first process to get here dies (a marker file per point)."""
    folder = os.environ.get(ONCE_DIR_ENV)
    if not folder:
        return True
    try:
        with open(Path(folder) / name, "x"):
            return True
    except FileExistsError:
        return False
