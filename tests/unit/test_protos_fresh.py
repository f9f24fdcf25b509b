"""The generated modules in protos/gen must match what scripts/gen_protos.py writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(tmp_path / "gen")

    committed = ROOT / "protos" / "gen"
    fresh = {p.relative_to(tmp_path / "gen"): p.read_bytes() for p in (tmp_path / "gen").rglob("*.py*")}
    current = {p.relative_to(committed): p.read_bytes() for p in committed.rglob("*.py*")}
    stale = sorted(
        str(path) for path in fresh.keys() | current.keys() if fresh.get(path) != current.get(path)
    )
    assert not stale, f"protos/gen is stale; run `make protos` and commit: {stale}"
