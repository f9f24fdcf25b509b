"""The alerting and recording rules are valid and behave as their unit tests say (promtool)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "ops" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool, installed from Debian's prometheus package when missing and this is possible."""
    found = shutil.which("promtool")
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        environment = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"],
        ):
            subprocess.run(command, check=False, env=environment, capture_output=True, timeout=600)
        found = shutil.which("promtool")
    if found is None:
        pytest.skip(
            "promtool is not installed and cannot be installed here (needs root and apt-get):"
            " install Prometheus's promtool (Debian/Ubuntu: apt-get install prometheus) to run this test"
        )
    return found


def test_rules_are_valid(promtool: str) -> None:
    checked = subprocess.run(
        [promtool, "check", "rules", "rules.yml"], cwd=RULES, capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_rules_pass_their_unit_tests(promtool: str) -> None:
    tested = subprocess.run(
        [promtool, "test", "rules", "rules.test.yml"], cwd=RULES, capture_output=True, text=True, timeout=120
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
