"""What `omnistock serve` prints once it serves: among the rest, how to stop it cleanly."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from omnistock.cli.serve import banner
from omnistock.gateway.runtime.embedded_redis import LOCK_FILE, DataDirInUse, EmbeddedRedis


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


ROOT = Path(__file__).resolve().parents[2]
SHOW_THE_BANNER = [ROOT / "README.md", ROOT / "docs" / "quickstart.md"]
RUNNING = ROOT / "docs" / "running.md"


@pytest.mark.parametrize("page", SHOW_THE_BANNER, ids=lambda page: str(page.relative_to(ROOT)))
def test_the_docs_show_the_banner_the_service_prints(page: Path) -> None:
    shown = page.read_text().split("```\nomnistock is serving\n", 1)[1].splitlines()[:7]
    config = SimpleNamespace(
        host="127.0.0.1", redis_url=None, data_dir=Path("/home/me/omnistock/var"), gateways=1, shards=1,
        ray_address=None,
    )  # fmt: skip
    service = SimpleNamespace(
        config=config, redis_url="redis://127.0.0.1:40263/0", port=50051, metrics_ports=[9464]
    )
    printed = banner(service).replace(f"kill -TERM {os.getpid()}", "kill -TERM 4242").splitlines()
    assert printed == ["omnistock is serving", *shown]


def test_the_docs_show_the_refusal_of_a_data_dir_in_use(tmp_path: Path) -> None:
    (line,) = [ln for ln in RUNNING.read_text().splitlines() if "is in use by another omnistock serve" in ln]
    held = tmp_path / "redis"
    held.mkdir()
    lock = os.open(held / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.write(lock, b"4242\n")
        with pytest.raises(DataDirInUse) as refused:
            EmbeddedRedis(held).start()  # refused before anything starts
    finally:
        os.close(lock)
    printed = f"error: cannot start omnistock: {refused.value}".replace(
        str(held.resolve()), "/home/me/omnistock/var/redis"
    )
    assert printed == line
