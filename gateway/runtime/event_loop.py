"""The event loop every omnistock server runs on, and the bench's echo ceiling with it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


def loop_runner() -> Callable[[Awaitable[Any]], Any]:
    """uvloop's runner when it is installed (a faster event loop), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run  # type: ignore[return-value]
    return uvloop.run


def loop_name() -> str:
    """The loop `loop_runner` runs: "uvloop" or "asyncio"."""
    return "asyncio" if loop_runner() is asyncio.run else "uvloop"


def running_loop_name() -> str:
    """The loop this coroutine runs on, by its package: "uvloop" or "asyncio"."""
    return type(asyncio.get_running_loop()).__module__.split(".")[0]
