"""What `pip install .` installs: the one package `omnistock`, the `omnistock` command, and
Locust only with the `loadtest` extra."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """A wheel built from a copy of the working tree (the build writes into its source)."""
    source = tmp_path_factory.mktemp("source")
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        path = ROOT / name
        if not path.exists() and not path.is_symlink():
            continue  # deleted in the working tree
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            (source / name).symlink_to(path.readlink())
        else:
            shutil.copy2(path, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            out,
            source,
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("omnistock-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_holds_only_the_omnistock_package(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/", 1)[0] for name in wheel.namelist()}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"omnistock"}
    names = set(wheel.namelist())
    for module in (
        "omnistock/client.py",
        "omnistock/cli/app.py",
        "omnistock/gateway/runtime/service.py",
        "omnistock/reservations/domain/partition.py",
        "omnistock/availability/network.py",
        "omnistock/protos/gen/omnistock/v1/reservation_pb2.py",
        "omnistock/loadtest/demo-network.toml",
    ):
        assert module in names


def test_the_command_and_the_loadtest_extra(wheel: zipfile.ZipFile) -> None:
    dist_info = next(n.split("/", 1)[0] for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    entry_points = wheel.read(f"{dist_info}/entry_points.txt").decode()
    assert "omnistock = omnistock.cli:main" in entry_points
    metadata = email.message_from_bytes(wheel.read(f"{dist_info}/METADATA"))
    requires = metadata.get_all("Requires-Dist") or []
    locust = [r for r in requires if r.startswith("locust")]
    assert locust and all('extra == "loadtest"' in r for r in locust)
    assert "loadtest" in (metadata.get_all("Provides-Extra") or [])
