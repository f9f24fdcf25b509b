"""The bench judges the catalog targets only where it measured them, at 10 M positions."""

from __future__ import annotations

from dataclasses import asdict

from omnistock.loadtest.bench import CatalogScale, render, targets

GIB = 2**30


def scale(positions: int, load_seconds: float, resident_gib: float, restart_seconds: float) -> CatalogScale:
    return CatalogScale(
        positions=positions,
        skus=positions // 50,
        nodes=50,
        load_seconds=load_seconds,
        positions_per_second=positions / load_seconds,
        resident_bytes=int(resident_gib * GIB),
        resident_by_process={},
        resident_before_bytes=int(0.8 * GIB),
        shard_positions=positions // 2,
        recovery_seconds=restart_seconds,
    )


def catalog_targets(found: CatalogScale) -> dict[str, tuple[str, bool | None]]:
    return {t.what: (t.measured, t.met) for t in targets([], found)}


def test_at_10_million_positions_the_catalog_targets_are_judged() -> None:
    judged = catalog_targets(scale(10_000_000, 30.0, 2.2, 9.5))
    assert judged == {
        "LoadStock of 10M positions": ("30 s (measured)", True),
        "memory with 10M positions": ("2.20 GiB (measured)", True),
        "shard restart": ("1.9 s", True),
    }
    assert catalog_targets(scale(10_000_000, 75.0, 3.5, 30.0)) == {
        "LoadStock of 10M positions": ("75 s (measured)", False),
        "memory with 10M positions": ("3.50 GiB (measured)", False),
        "shard restart": ("6.0 s", False),
    }


def test_from_a_smaller_catalog_they_are_projected_and_not_judged() -> None:
    projected = catalog_targets(scale(1_000_000, 3.0, 1.3, 3.4))
    assert projected == {
        "LoadStock of 10M positions": ("30 s (projected)", None),
        "memory with 10M positions": ("5.80 GiB (projected)", None),
        "shard restart": ("6.8 s (at 500,000)", None),
    }
    report = {
        "machine": {
            "cpus": 2,
            "cpu_model": "",
            "memory_mib": 24_000,
            "python": "3.11",
            "grpcio": "1.85",
            "load_average_at_start": [0.5, 0.5, 0.5],
        },
        "settings": {"target": "started by the bench", "positions": 40_004},
        "load_stock_seconds": 0.5,
        "scenarios": [],
        "catalog": None,
        "targets": [asdict(t) for t in targets([], scale(1_000_000, 3.0, 1.3, 3.4))],
    }
    text = render(report)
    assert "NO" not in text and "--catalog 10000000 measures it" in text
