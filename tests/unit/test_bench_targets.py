"""The bench judges the catalog targets only where it measured them, at 10 M positions."""

from __future__ import annotations

from dataclasses import asdict

from omnistock.loadtest.bench import CatalogScale, Measurement, render, targets

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


def measured(key: str, cpu_ms: dict[str, float], p99_ms: float = 5.0) -> Measurement:
    return Measurement(key, key, 32, 10.0, 1000, 0, 100.0, 1.0, p99_ms, 20.0, cpu_ms=cpu_ms)


def test_cpu_targets_compare_omnistock_with_the_peer_and_the_echo_server_of_the_same_run() -> None:
    run = [
        measured("echo", {"echo server": 0.20, "omnistock": 0.01}),
        measured("echo_end", {"echo server": 0.22, "omnistock": 0.01}),
        measured("reserve_1", {"omnistock": 0.35, "peer": 0.01}),
        measured("reserve_5", {"omnistock": 1.20, "peer": 0.01}),
        measured("peer_reserve_1", {"omnistock": 0.01, "peer": 0.50}),
        measured("peer_reserve_5", {"omnistock": 0.01, "peer": 1.00}),
        measured("availability_1", {"omnistock": 0.28}),
        measured("reserve_1_quarter_rate", {"omnistock": 0.6}, p99_ms=12.5),
    ]
    judged = {t.what: (t.goal, t.measured, t.met) for t in targets(run)}
    assert judged == {
        "1-line Reserve, CPU per call": ("<= 0.7 x the peer", "0.70x (0.350 vs 0.500 ms)", True),
        "5-line Reserve, CPU per call": ("<= 1 x the peer", "1.20x (1.200 vs 1.000 ms)", False),
        "1-SKU availability, CPU per call": ("<= 1.3 x echo server", "1.33x (0.280 vs 0.210 ms)", False),
        "Reserve p99 at a quarter of the rate": ("<= 10 ms", "12.5 ms", False),
    }


def test_without_the_service_s_cpu_a_cpu_target_is_not_judged() -> None:
    run = [measured("reserve_1", {"load generator": 0.3}), measured("peer_reserve_1", {"peer": 0.5})]
    (target,) = targets(run)
    assert (target.measured, target.met) == ("not measured", None)
