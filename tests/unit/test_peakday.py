"""`omnistock loadtest`'s pure parts: its arguments, reading Locust's files, the verdict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from omnistock.cli import main
from omnistock.cli.app import build_parser
from omnistock.loadtest import peak, peakday
from omnistock.loadtest.peakday import RpcVerdict, ScenarioVerdict, Verdict
from omnistock.protos.gen.omnistock.v1 import common_pb2

STATS = """Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,\
50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%
grpc,Reserve,120,2,54,80.5,23.1,630.2,300,2.8,0.05,54,60,70,80,90,100,200,310,600,630,630
grpc,WatchAvailability,465,0,24,30,1,1900,100,10.9,0,24,30,40,50,60,70,80,90,100,1900,1900
,Aggregated,585,2,30,40,1,1900,150,13.7,0.05,30,40,50,60,70,80,90,100,600,1900,1900
"""
FAILURES = """Method,Name,Error,Occurrences,First Seen,Last Seen
grpc,Reserve,"<_InactiveRpcError of RPC that terminated with: status = StatusCode.UNAVAILABLE>",2,1,2
"""
EXCEPTIONS = """Count,Message,Traceback,Nodes
3,KeyError('x'),Traceback...,local
"""


def test_the_command_is_registered_with_the_retailers_numbers() -> None:
    args = build_parser().parse_args(
        ["loadtest", "--orders-per-second", "2", "--spike", "20", "--minutes", "3", "--headless", "--json"]
    )
    assert args.handler.func is peakday.run_loadtest
    assert (args.orders_per_second, args.spike, args.minutes, args.headless, args.json) == (
        2,
        20,
        3,
        True,
        True,
    )
    assert (args.lines_per_order, args.checks_per_order, args.stock_updates_per_second) == (2.5, 30, 10)
    assert (args.ramp_minutes, args.target, args.out) == (1, None, "var/loadtest")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--spike", "0.5"], "spike must be at least 1"),
        (["--orders-per-second", "0"], "orders per second must be positive"),
        (["--minutes", "1", "--ramp-minutes", "2"], "ramp minutes"),
    ],
)
def test_wrong_numbers_stop_before_anything_starts(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["loadtest", "--headless", *argv]) == 2
    assert message in capsys.readouterr().err


def test_the_cli_process_never_imports_locust_or_gevent() -> None:
    # Locust patches the standard library with gevent on import; that belongs to its own process.
    probe = "import sys, omnistock.cli; print(sorted(m for m in ('locust', 'gevent') if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_rpc_stats_and_errors_from_locusts_files(tmp_path: Path) -> None:
    (tmp_path / "peak_stats.csv").write_text(STATS)
    (tmp_path / "peak_failures.csv").write_text(FAILURES)
    (tmp_path / "peak_exceptions.csv").write_text(EXCEPTIONS)
    rpcs = peakday.read_rpc_stats(tmp_path, {"Reserve": 50.0})
    assert [r.name for r in rpcs] == ["Reserve", "WatchAvailability"]  # no Aggregated row
    reserve, watch = rpcs
    assert (reserve.calls, reserve.errors, reserve.p50_ms, reserve.p99_ms) == (120, 2, 54, 310)
    assert (reserve.expected_per_second, watch.expected_per_second) == (50.0, None)
    assert peakday.exceptions_count(tmp_path) == 3
    errors = peakday.read_errors(tmp_path)
    assert len(errors) == 2 and errors[0].startswith("2 x Reserve:") and "UNAVAILABLE" in errors[0]
    assert errors[1] == "3 x KeyError('x')"


def test_no_exceptions_file_no_exceptions(tmp_path: Path) -> None:
    assert peakday.exceptions_count(tmp_path) == 0 and peakday.read_errors(tmp_path) == []


def test_rate_held_counts_whole_seconds_only_in_the_window() -> None:
    per_second = {"0": 99, "10": 4, "11": 6, "12": 5, "13": 100}
    assert peakday.held_rate(per_second, 10, 13) == 5
    assert peakday.held_rate(per_second, 10, 20) == pytest.approx(115 / 10)
    assert peakday.held_rate(per_second, 13, 13) == 0


def test_scenarios_are_measured_while_the_spike_is_held() -> None:
    planned = peak.plan(peak.NormalPeak(1), 3, minutes=2, ramp_minutes=0.5)
    hold_from = int(30 + peakday.SETTLE_SECONDS)
    report: dict[str, Any] = {
        "per_second": {
            peak.CHECKOUT: {str(s): (1 if s < 30 else 3) for s in range(120)},
            peak.SHOPPER: {str(s): 45 for s in range(hold_from, 119)},
        },
        "outcomes": {peak.CHECKOUT: {"confirm": 200}},
    }
    verdicts = {v.scenario: v for v in peakday.scenario_verdicts(planned, report, ran_seconds=125)}
    assert list(verdicts) == list(peak.SCENARIOS)
    checkout = verdicts[peak.CHECKOUT]
    assert (checkout.target_per_second, checkout.achieved_per_second, checkout.ratio) == (3, 3, 1)
    assert checkout.outcomes == {"confirm": 200}
    assert verdicts[peak.SHOPPER].ratio == pytest.approx(0.5)  # 45 of 90 a second
    assert verdicts[peak.MARKETPLACE].target_per_second is None
    assert verdicts[peak.ASSOCIATE].achieved_per_second == 0


def position(**counts: int) -> common_pb2.Position:
    return common_pb2.Position(sku="SKU-00001", node_id="STORE-001", **counts)


def test_oversold_units_are_held_or_committed_beyond_sellable() -> None:
    assert peakday.oversold(position(on_hand=10, reserved=4, committed=6)) == 0
    assert peakday.oversold(position(on_hand=10, reserved=5, committed=6)) == 1
    assert peakday.oversold(position(on_hand=10, damaged=3, quality_hold=1, reserved=4, committed=4)) == 2
    assert peakday.oversold(position(on_hand=0)) == 0


def verdict(**changes: Any) -> Verdict:
    fields: dict[str, Any] = dict(
        command="omnistock loadtest --headless",
        target="started by the load test",
        normal_peak={
            "orders_per_second": 1,
            "lines_per_order": 2.5,
            "checks_per_order": 30,
            "stock_updates_per_second": 10,
        },
        spike=50,
        minutes=5,
        ramp_minutes=1,
        users_at_spike={"checkout": 50},
        scenarios=[ScenarioVerdict("checkout", 50, 49.5, 0.99, {"confirm": 10})],
        rpcs=[RpcVerdict("Reserve", 100, 0, 40.0, 50.0, 12, 80, 200)],
        errors=0,
        error_messages=[],
        conservation_ok=True,
        conservation_problems=[],
        positions_checked=22_000,
        oversold_units=0,
        negative_available_positions=0,
        expiring_checked=10,
        expiring_still_open=0,
        locust_exit_code=0,
        out="var/loadtest",
    )
    return Verdict(**(fields | changes))


@pytest.mark.parametrize(
    "broken",
    [
        dict(errors=1),
        dict(oversold_units=2),
        dict(negative_available_positions=1),
        dict(conservation_ok=False),
        dict(expiring_still_open=1),
        dict(locust_exit_code=1),
    ],
)
def test_any_error_or_oversell_fails_the_verdict(broken: dict[str, Any]) -> None:
    assert verdict().passed
    failed = verdict(**broken)
    assert not failed.passed
    assert peakday.render(failed).endswith("verdict: FAIL")


def test_the_verdict_reads_as_a_table() -> None:
    text = peakday.render(verdict())
    assert "checkout" in text and "49.5" in text and "0.99" in text
    assert "Reserve" in text and "oversold units     0" in text
    assert text.endswith("verdict: PASS")


def test_cpu_shares_of_the_run_say_what_the_hypervisor_took() -> None:
    before = [100, 0, 50, 800, 50, 0, 0, 0]
    after = [400, 0, 150, 1000, 50, 0, 0, 400]  # 400 busy, 200 idle, 400 stolen of 1000
    assert peakday.cpu_shares(before, after) == {"busy": 0.4, "idle": 0.2, "stolen": 0.4}
    assert peakday.cpu_shares([], after) == {}
    ticks = peakday.cpu_ticks()
    assert len(ticks) in (0, 8) and all(t >= 0 for t in ticks)


def test_the_verdict_names_the_machines_share_of_cpu() -> None:
    machine = {
        "cpus": 2,
        "load_average_at_start": [3.5, 2.0, 1.0],
        "load_average_at_end": 9.25,
        "cpu_during_run": {"busy": 0.4, "idle": 0.05, "stolen": 0.55},
    }
    text = peakday.render(verdict(machine=machine))
    assert "40% busy, 5% idle, 55% stolen by the hypervisor" in text and "9.2 at end" in text


# --- the rules: rates and p99s while the spike was held ---


def rules(failed: Verdict) -> dict[tuple[str, str], peakday.Rule]:
    return {(rule.rule, rule.subject): rule for rule in failed.rules()}


def test_a_scenario_below_the_rate_ratio_fails_naming_it() -> None:
    short = verdict(scenarios=[ScenarioVerdict("checkout", 50, 40.0, 0.8, {})])
    rule = rules(short)["rate (achieved / target)", "checkout"]
    assert not rule.met and (rule.measured, rule.required) == (0.8, 0.95)
    assert not short.passed
    text = peakday.render(short)
    assert "FAILED rate (achieved / target) of checkout: measured 0.8, required at least 0.95" in text
    assert text.endswith("verdict: FAIL")
    assert verdict(scenarios=[ScenarioVerdict("checkout", 50, 48.0, 0.96, {})]).passed
    assert verdict(min_rate_ratio=0.75, scenarios=[ScenarioVerdict("checkout", 50, 40.0, 0.8, {})]).passed


def test_a_p99_over_its_budget_while_held_fails() -> None:
    slow = RpcVerdict("Reserve", 100, 0, 40.0, 50.0, 12, 80, 200, held_calls=90, held_p99_ms=140)
    failed = verdict(rpcs=[slow])
    rule = rules(failed)["p99 ms", "Reserve"]
    assert not rule.met and (rule.measured, rule.required) == (140, peakday.WRITE_BUDGET_MS)
    assert "FAILED p99 ms of Reserve: measured 140, required at most 100" in peakday.render(failed)
    assert verdict(rpcs=[slow], p99_budgets_ms={"Reserve": 150.0}).passed
    # No call in the held window: nothing to judge.
    assert verdict(rpcs=[RpcVerdict("Reserve", 3, 0, 1.0, 1.0, 12, 900, 900)]).passed


def test_all_fine_passes_with_every_rule_in_the_json() -> None:
    fine = verdict(rpcs=[RpcVerdict("GetAvailability", 900, 0, 40.0, 45.0, 3, 20, 30, 800, 35)])
    document = fine.document()
    assert document["passed"] and peakday.render(fine).endswith("verdict: PASS")
    named = {(r["rule"], r["subject"]): r for r in document["rules"]}
    assert named["p99 ms", "GetAvailability"] | {} == {
        "rule": "p99 ms",
        "subject": "GetAvailability",
        "measured": 35,
        "required": peakday.READ_BUDGET_MS,
        "comparison": "at most",
        "met": True,
    }
    assert named["rate (achieved / target)", "checkout"]["met"]
    assert {"errors", "oversold units", "holds still open past their TTL"} <= {r for r, _ in named}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Reserve", "wants RPC=MS"),
        ("=100", "wants RPC=MS"),
        ("Reserv=100", "unknown RPC 'Reserv'"),
        ("Reserve=fast", "budget of Reserve must be a positive number of ms"),
        ("Reserve=0", "positive"),
        ("Reserve=-5", "positive"),
        ("Reserve=inf", "positive"),
    ],
)
def test_a_wrong_budget_is_refused_naming_what_is_wrong(
    text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["loadtest", "--p99-budget", text])
    err = capsys.readouterr().err
    assert "--p99-budget" in err and message in err


def test_budgets_and_ratio_from_the_command_line() -> None:
    args = build_parser().parse_args(
        [
            "loadtest",
            "--p99-budget",
            "Reserve=250",
            "--p99-budget",
            "GetAvailability=20.5",
            "--min-rate-ratio",
            "0.9",
            "--processes",
            "3",
        ]
    )
    assert dict(args.p99_budget) == {"Reserve": 250, "GetAvailability": 20.5}
    assert (args.min_rate_ratio, args.processes) == (0.9, 3)
    defaults = build_parser().parse_args(["loadtest"])
    assert defaults.p99_budget is None and defaults.min_rate_ratio == 0.95
    assert defaults.processes >= 1
    for wrong in (["--min-rate-ratio", "0"], ["--min-rate-ratio", "1.5"], ["--processes", "0"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["loadtest", *wrong])


# --- the Locust processes' files, and the CPU per call ---


def test_the_workers_files_merge_on_the_masters_clock() -> None:
    master = {"started": 1000.4, "per_second": {}, "calls": {}, "outcomes": {}, "expiring": []}
    worker = {
        "started": 1001.0,
        "per_second": {"checkout": {"1010": 2, "1011": 3}},
        "calls": {"Reserve": {"1010": 2}},
        "latency_ms": {"Reserve": {"1010": {"12": 1, "40": 1}}},
        "outcomes": {"checkout": {"confirm": 4}},
        "expiring": [["a", 1.0]],
    }
    other = worker | {"per_second": {"checkout": {"1010": 1}}, "latency_ms": {"Reserve": {"1010": {"12": 2}}}}
    merged = peakday.merge_reports([master, worker, other], started=1000.4)
    assert merged["per_second"] == {"checkout": {"10": 3, "11": 3}}
    assert merged["calls"] == {"Reserve": {"10": 4}}
    assert merged["latency_ms"] == {"Reserve": {"10": {"12": 3, "40": 1}}}
    assert merged["outcomes"] == {"checkout": {"confirm": 8}} and len(merged["expiring"]) == 2
    assert peakday.held_latency(merged, "Reserve", 10, 11) == (4, 40.0)
    assert peakday.held_latency(merged, "Reserve", 11, 20) == (0, None)
    assert peakday.held_calls(merged, 0, 11) == {"Reserve": 4}
    assert peakday.merge_reports([]) == {}


def test_p99_of_counts_by_rounded_time() -> None:
    times = {"5": 98, "30": 1, "700": 1}
    assert peakday.percentile(times, 0.99) == 30 and peakday.percentile(times, 0.5) == 5
    assert peakday.percentile(times, 1.0) == 700


def snapshot(generator: float, gateway: float) -> dict[str, dict[int, float]]:
    return {"load generator": {1: generator}, "gateway": {2: gateway}, "shards": {3: 0.0}}


def test_cpu_per_call_over_the_held_window() -> None:
    samples = [(t, snapshot(t / 10, t / 5)) for t in (100.0, 101.0, 110.0, 120.0, 121.0)]
    # 10 s, 200 calls: 20 calls/s; the generator spends 0.1 s a second, the gateway 0.2.
    cpu = peakday.cpu_per_call(samples, (110.2, 120.2), {"Reserve": 150, "GetAvailability": 50}, 3, True)
    assert cpu is not None
    assert (cpu.calls, cpu.calls_per_second, cpu.window_seconds) == (200, 20, 10)
    assert cpu.load_generator_core_ms == pytest.approx(5) and cpu.service_core_ms == pytest.approx(10)
    assert cpu.service_by_role == {"gateway": 10, "shards": 0}
    assert cpu.rates == {"GetAvailability": 5, "Reserve": 15}
    elsewhere = peakday.cpu_per_call(samples, (110, 120), {"Reserve": 10}, 3, False)
    assert (
        elsewhere is not None and elsewhere.service_core_ms is None and "--target" in elsewhere.service_note
    )
    assert peakday.cpu_per_call(samples, (110, 120), {}, 3, True) is None
    assert peakday.cpu_per_call(samples[:1], (110, 120), {"Reserve": 1}, 3, True) is None


def test_a_missing_bench_file_is_said_not_hidden(tmp_path: Path) -> None:
    cpu = peakday.CpuPerCall(10, 100, 10, 3, 1.0, 2.0, {}, rates={"Reserve": 10})
    peakday.predict(cpu, str(tmp_path / "none.json"))
    assert cpu.predicted_core_ms is None and "no prediction" in cpu.prediction_note
    assert "prediction         no prediction" in "\n".join(peakday.cpu_lines(cpu))
