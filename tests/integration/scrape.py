"""Read a running service's /metrics the way Prometheus does."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the series of `name` whose labels include `labels` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(value for (sample, got), value in samples.items() if sample == name and wanted <= got)


def exported_names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


async def eventually(port: int, check: Callable[[Samples], bool], timeout: float = 30.0) -> Samples:
    """Scrape until `check` holds (the shards' stats are polled every stats_interval)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        if check(samples) or time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.2)
