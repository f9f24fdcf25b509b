"""The protos pass `buf lint` (protos/buf.yaml: the STANDARD style guide, and a comment on
everything of the public API), so `pytest` alone catches what `make protos-check` does."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _buf() -> str:
    """buf from the venv's buf-bin (the dev extra), else from PATH."""
    beside = Path(sys.executable).parent / "buf"
    found = str(beside) if beside.exists() else shutil.which("buf")
    if found is None:
        pytest.fail("buf not found: install the dev extra (pip install -e '.[dev]'), which has buf-bin")
    return found


def test_the_protos_pass_buf_lint() -> None:
    result = subprocess.run(
        [_buf(), "lint", "protos", "--error-format", "text"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"buf lint protos:\n{result.stdout}{result.stderr}"
