"""What `omnistock serve` prints once it serves: among the rest, how to stop it cleanly."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from gateway.cli.serve import banner


def running(redis_url: str | None) -> Any:
    config = SimpleNamespace(
        host="127.0.0.1", redis_url=redis_url, data_dir=Path("var"), gateways=1, shards=1, ray_address=None
    )
    return SimpleNamespace(
        config=config, redis_url=redis_url or "redis://127.0.0.1:6390/0", port=50051, metrics_ports=[9464]
    )


def test_the_banner_says_how_to_stop_the_service_cleanly() -> None:
    for redis_url in (None, "redis://redis.internal:6379/0"):
        text = banner(running(redis_url))
        (stop,) = [row for row in text.splitlines() if row.strip().startswith("stop")]
        assert "Ctrl-C" in stop and f"kill -TERM {os.getpid()}" in stop
