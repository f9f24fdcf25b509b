"""Cores are counted as the process may use them: `taskset -c 0 omnistock bench` on a
2-core machine is a 1-core run, and its report and default shard count must say so."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from omnistock.gateway.runtime.cpus import default_shards, usable_cpus
from omnistock.loadtest.bench import describe_machine

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")


@pytest.fixture
def one_core() -> Iterator[None]:
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def test_all_cores_allowed_are_counted() -> None:
    assert usable_cpus() == len(os.sched_getaffinity(0))
    assert default_shards() == max(1, usable_cpus() - 1)


@pytest.mark.usefixtures("one_core")
def test_a_process_pinned_to_one_core_counts_one() -> None:
    assert usable_cpus() == 1
    assert default_shards() == 1
    assert describe_machine()["cpus"] == 1
