"""`omnistock loadtest`: the peak day, in one command.

    omnistock loadtest --orders-per-second 1 --spike 50 --minutes 5 --headless [--target HOST:PORT]

Unless --target is given it starts an omnistock service (like `omnistock bench`); it loads
the demo network (nodes, channels, 1000 SKUs) when the service has no node yet, then runs
Locust (loadtest/locustfile.py) in its own process, so gevent patches that process only:
the normal peak at once, a ramp to spike x the normal peak, the spike held. Locust writes
its CSV files and HTML report into --out. The verdict compares each scenario's rate while
the spike was held with its target, gives p50/p99 and errors per RPC, and checks at the end
that nothing was oversold (CheckConservation, and every position read from the shards: no
available below zero, held and committed units within sellable on hand) and that the holds
left to expire did expire.

Locust runs as a master and --processes workers (one per usable core by default), so the
load generator is not what limits the rates; the CPU of every Locust process, and of the
service's processes when it started them, is read from the kernel's counters over the held
spike and given per call. Exit status 1 when any rule fails: a scenario below
--min-rate-ratio of its target while the spike was held, an RPC's p99 over its budget
(--p99-budget) while the spike was held, any error, oversold unit or hold left open.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import importlib.util
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil

from omnistock.client import (
    API_KEY_ENV,
    API_KEY_FILE_ENV,
    TLS_CA_ENV,
    TLS_CERT_ENV,
    TLS_KEY_ENV,
    Credentials,
    OmnistockClient,
)
from omnistock.gateway.runtime.cpus import usable_cpus
from omnistock.gateway.runtime.embedded_redis import free_port
from omnistock.loadtest import bench, peak, processes, sizing
from omnistock.loadtest.datagen import sku_id
from omnistock.loadtest.processes import Process
from omnistock.protos.gen.omnistock.v1 import reservation_pb2

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
LOCUST_SCENARIOS = "locust-scenarios.json"
"""What each Locust process did (the master's or the only one's; workers' beside it, -worker-I)."""
LOCUST_WORKER_ENV = "OMNISTOCK_LOCUST_WORKER"
"""Names a worker I/N to the Locust file (which reads it without importing this module)."""
CSV_PREFIX = "peak"
"""Locust's files in --out: peak_stats.csv, peak_stats_history.csv, peak_failures.csv, ..."""
DEMO_SKUS = 1000
SETTLE_SECONDS = 10.0
"""Left out at the start of the held spike when rates are measured (users still spawning)."""
EXPIRY_GRACE_SECONDS = 5.0
"""A hold is checked for expiry once its TTL passed this long ago."""
EXPIRY_SAMPLE = 200
READ_CHUNK = 200
"""SKUs per consistent GetAvailability of the final check."""
PROGRESS_SECONDS = 30.0
WORKERS_WAIT_SECONDS = 120
"""How long Locust's master waits for its workers to connect (each imports gRPC and the protos)."""
CPU_SAMPLE_SECONDS = 1.0
"""How often the processes' CPU counters are read; the held spike's edges fall within half of it."""

READ_RPCS = ("GetAvailability", "FindPickupStores")
WRITE_RPCS = ("Reserve", "Confirm", "Release", "Fulfil", "Return", "AdjustStock", "SetStock")
STREAM_RPC = "WatchAvailability"
READ_BUDGET_MS = 50.0
"""A storefront renders a listing or product page in a few hundred ms; the stock call is one
of several, so it gets a small share even for the slowest 1% of pages."""
WRITE_BUDGET_MS = 100.0
"""Reserve and its kin sit inside checkout and store apps next to payment and fraud calls; a
tenth of a second at p99 keeps them off the shopper's critical path."""
STREAM_BUDGET_MS = 1000.0
"""A marketplace's listing may lag the stock by a second (an update's delay, as_of to arrival)."""
DEFAULT_P99_BUDGETS_MS = (
    dict.fromkeys(READ_RPCS, READ_BUDGET_MS)
    | dict.fromkeys(WRITE_RPCS, WRITE_BUDGET_MS)
    | {STREAM_RPC: STREAM_BUDGET_MS}
)
MIN_RATE_RATIO = 0.95
SERVICE_ROLES = ("gateway", "shards", "redis", "ray")


@dataclass
class ScenarioVerdict:
    scenario: str
    target_per_second: float | None
    """At the spike; None for the marketplace streams (their updates follow the changes)."""
    achieved_per_second: float
    """Mean while the spike was held (after SETTLE_SECONDS)."""
    ratio: float | None
    """Achieved over target."""
    outcomes: dict[str, int]


@dataclass
class RpcVerdict:
    name: str
    calls: int
    errors: int
    per_second: float
    """Over the whole run (ramp included)."""
    expected_per_second: float | None
    """At the spike, from the model."""
    p50_ms: float
    p99_ms: float
    max_ms: float
    held_calls: int = 0
    """Calls (stream updates for WatchAvailability) while the spike was held."""
    held_p99_ms: float | None = None
    """p99 while the spike was held; None without a call in it."""


@dataclass
class CpuPerCall:
    """Core-ms per call while the spike was held, by the kernel's counters."""

    window_seconds: float
    calls: int
    """Calls Locust completed in the window (every RPC, WatchAvailability's updates included)."""
    calls_per_second: float
    load_generator_processes: int
    load_generator_core_ms: float | None
    service_core_ms: float | None
    """Every process of the service (None when it runs elsewhere: --target)."""
    service_by_role: dict[str, float]
    service_note: str = ""
    rates: dict[str, float] = field(default_factory=dict)
    """Calls per second by RPC in the window."""
    predicted_core_ms: float | None = None
    """The service's CPU per call that `omnistock size` predicts for these rates (--bench)."""
    predicted_idle_core_ms: float | None = None
    """The idle service's part of predicted_core_ms; the rest is the calls finding it idle."""
    measured_over_predicted: float | None = None
    prediction_note: str = ""


def predict(cpu: CpuPerCall, bench_file: str) -> None:
    """The prediction for the window's rates from a `omnistock bench --json` report, beside the
    measured figure; what stood in its way in prediction_note."""
    try:
        report = json.loads(Path(bench_file).read_text(encoding="utf-8"))
        prediction = sizing.predict(cpu.rates, report)
        cpu.predicted_core_ms = round(prediction.core_ms_per_call, 3)
        cpu.predicted_idle_core_ms = round(prediction.idle_core_ms, 3)
    except (OSError, ValueError) as error:
        cpu.prediction_note = f"no prediction from {bench_file}: {error}"
        return
    if cpu.service_core_ms is not None and cpu.predicted_core_ms > 0:
        cpu.measured_over_predicted = round(cpu.service_core_ms / cpu.predicted_core_ms, 2)


@dataclass
class Rule:
    """One check of the verdict: met when measured is at most (or at least) required."""

    rule: str
    subject: str
    measured: float
    required: float
    comparison: str
    """"at most" or "at least"."""

    @property
    def met(self) -> bool:
        return (
            self.measured <= self.required if self.comparison == "at most" else self.measured >= self.required
        )

    def describe(self) -> str:
        return (
            f"{self.rule} of {self.subject}: measured {self.measured:g},"
            f" required {self.comparison} {self.required:g}"
        )


@dataclass
class Verdict:
    command: str
    target: str
    normal_peak: dict[str, float]
    spike: float
    minutes: float
    ramp_minutes: float
    users_at_spike: dict[str, int]
    scenarios: list[ScenarioVerdict]
    rpcs: list[RpcVerdict]
    errors: int
    """Failed calls plus errors raised inside users."""
    error_messages: list[str]
    conservation_ok: bool
    conservation_problems: list[str]
    positions_checked: int
    oversold_units: int
    negative_available_positions: int
    expiring_checked: int
    expiring_still_open: int
    locust_exit_code: int
    out: str
    machine: dict[str, Any] = field(default_factory=dict)
    min_rate_ratio: float = MIN_RATE_RATIO
    p99_budgets_ms: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_P99_BUDGETS_MS))
    cpu: CpuPerCall | None = None

    def rules(self) -> list[Rule]:
        """Every check: rates and p99s while the spike was held, then what must never happen."""
        found = [
            Rule("rate (achieved / target)", s.scenario, s.ratio, self.min_rate_ratio, "at least")
            for s in self.scenarios
            if s.ratio is not None
        ]
        found += [
            Rule("p99 ms", r.name, r.held_p99_ms, self.p99_budgets_ms[r.name], "at most")
            for r in self.rpcs
            if r.held_p99_ms is not None and r.name in self.p99_budgets_ms
        ]
        broken = len(self.conservation_problems) or (0 if self.conservation_ok else 1)
        return [
            *found,
            Rule("errors", "the run", self.errors, 0, "at most"),
            Rule("oversold units", "every position", self.oversold_units, 0, "at most"),
            Rule("available below zero", "every position", self.negative_available_positions, 0, "at most"),
            Rule("conservation problems", "CheckConservation", broken, 0, "at most"),
            Rule(
                "holds still open past their TTL",
                "the holds left to expire",
                self.expiring_still_open,
                0,
                "at most",
            ),
            Rule("exit status", "Locust", self.locust_exit_code, 0, "at most"),
        ]

    @property
    def passed(self) -> bool:
        return all(rule.met for rule in self.rules())

    def document(self) -> dict[str, Any]:
        """The verdict as JSON: its figures, every rule with measured, required and met, passed."""
        rules = [asdict(rule) | {"met": rule.met} for rule in self.rules()]
        return asdict(self) | {"rules": rules, "passed": all(rule["met"] for rule in rules)}


# --- reading Locust's output ---


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # "N/A" before the first call
        return 0.0


def read_rpc_stats(out: Path, expected: dict[str, float]) -> list[RpcVerdict]:
    """Per RPC from Locust's <prefix>_stats.csv (the Aggregated row left out)."""
    rows = []
    with (out / f"{CSV_PREFIX}_stats.csv").open(newline="") as stats:
        for row in csv.DictReader(stats):
            if row["Name"] == "Aggregated":
                continue
            rows.append(
                RpcVerdict(
                    name=row["Name"],
                    calls=int(row["Request Count"]),
                    errors=int(row["Failure Count"]),
                    per_second=round(_number(row["Requests/s"]), 2),
                    expected_per_second=round(expected[row["Name"]], 2) if row["Name"] in expected else None,
                    p50_ms=_number(row["50%"]),
                    p99_ms=_number(row["99%"]),
                    max_ms=round(_number(row["Max Response Time"]), 1),
                )
            )
    return rows


def read_errors(out: Path) -> list[str]:
    """Failed calls and exceptions raised in users, one line each with its count."""
    found = []
    with contextlib.suppress(OSError), (out / f"{CSV_PREFIX}_failures.csv").open(newline="") as failures:
        found += [f"{r['Occurrences']} x {r['Name']}: {r['Error']}" for r in csv.DictReader(failures)]
    with contextlib.suppress(OSError), (out / f"{CSV_PREFIX}_exceptions.csv").open(newline="") as raised:
        found += [f"{r['Count']} x {r['Message']}" for r in csv.DictReader(raised)]
    return found


def exceptions_count(out: Path) -> int:
    with contextlib.suppress(OSError), (out / f"{CSV_PREFIX}_exceptions.csv").open(newline="") as raised:
        return sum(int(r["Count"]) for r in csv.DictReader(raised))
    return 0


def held_rate(per_second: dict[str, int], hold_from: float, hold_to: float) -> float:
    """Mean iterations per second over the whole seconds in [hold_from, hold_to)."""
    first, last = int(hold_from), int(hold_to)
    if last <= first:
        return 0.0
    return sum(per_second.get(str(s), 0) for s in range(first, last)) / (last - first)


def hold_window(plan: peak.Plan, ran_seconds: float) -> tuple[float, float]:
    """[from, to) in seconds since Locust started: the spike held, users settled."""
    hold_from = plan.ramp_seconds + SETTLE_SECONDS
    hold_to = min(plan.total_seconds, ran_seconds) - 1  # the last second is cut short
    if hold_to - hold_from < 5:  # too short a hold to settle: the whole hold
        hold_from = plan.ramp_seconds
    return hold_from, hold_to


def merge_reports(parts: list[dict[str, Any]], started: float | None = None) -> dict[str, Any]:
    """The Locust processes' scenario files as one, seconds counted from `started` (the master's
    start: the shape's clock) or else the earliest part's. Each part counts by second since the
    epoch (one machine's clock)."""
    if not parts:
        return {}
    base = int(started if started is not None else min(part["started"] for part in parts))
    merged: dict[str, Any] = {"started": float(base), "per_second": {}, "calls": {}, "latency_ms": {}}
    outcomes: dict[str, dict[str, int]] = {}
    expiring: list[list[Any]] = []
    for part in parts:
        for kind in ("per_second", "calls"):
            for name, seconds in part.get(kind, {}).items():
                into = merged[kind].setdefault(name, {})
                for second, count in seconds.items():
                    key = str(int(second) - base)
                    into[key] = into.get(key, 0) + count
        for name, seconds in part.get("latency_ms", {}).items():
            into = merged["latency_ms"].setdefault(name, {})
            for second, times in seconds.items():
                counts = into.setdefault(str(int(second) - base), {})
                for ms, count in times.items():
                    counts[ms] = counts.get(ms, 0) + count
        for scenario, counts in part.get("outcomes", {}).items():
            into = outcomes.setdefault(scenario, {})
            for outcome, count in counts.items():
                into[outcome] = into.get(outcome, 0) + count
        expiring += part.get("expiring", [])
    return merged | {"outcomes": outcomes, "expiring": expiring}


def percentile(times: dict[str, int], share: float) -> float:
    """The time (ms) under which `share` of the calls finished, from counts by rounded ms."""
    ordered = sorted((float(ms), count) for ms, count in times.items())
    wanted = share * sum(count for _, count in ordered)
    seen = 0
    for ms, count in ordered:
        seen += count
        if seen >= wanted:
            return ms
    return ordered[-1][0] if ordered else 0.0


def held_latency(
    report: dict[str, Any], name: str, hold_from: float, hold_to: float
) -> tuple[int, float | None]:
    """(calls, p99 ms) of an RPC over the whole seconds in [hold_from, hold_to)."""
    times: dict[str, int] = {}
    by_second = report.get("latency_ms", {}).get(name, {})
    for second in range(int(hold_from), int(hold_to)):
        for ms, count in by_second.get(str(second), {}).items():
            times[ms] = times.get(ms, 0) + count
    calls = sum(times.values())
    return calls, (percentile(times, 0.99) if calls else None)


def held_calls(report: dict[str, Any], hold_from: float, hold_to: float) -> dict[str, int]:
    """Calls by RPC over the whole seconds in [hold_from, hold_to)."""
    seconds = range(int(hold_from), int(hold_to))
    return {
        name: sum(counts.get(str(second), 0) for second in seconds)
        for name, counts in report.get("calls", {}).items()
    }


def scenario_verdicts(plan: peak.Plan, report: dict[str, Any], ran_seconds: float) -> list[ScenarioVerdict]:
    """Each scenario's rate while the spike was held, against its target."""
    hold_from, hold_to = hold_window(plan, ran_seconds)
    verdicts = []
    for scenario in peak.SCENARIOS:
        planned = plan.classes.get(scenario)
        if planned is None and scenario != peak.MARKETPLACE:
            continue
        achieved = held_rate(report.get("per_second", {}).get(scenario, {}), hold_from, hold_to)
        verdicts.append(
            ScenarioVerdict(
                scenario,
                round(planned.rate, 2) if planned else None,
                round(achieved, 2),
                round(achieved / planned.rate, 3) if planned else None,
                report.get("outcomes", {}).get(scenario, {}),
            )
        )
    return verdicts


# --- the end-of-run checks ---


@dataclass
class StockCheck:
    conservation_ok: bool
    problems: list[str]
    positions: int
    oversold_units: int
    negative_available: int


def oversold(position: Any) -> int:
    """Units held or committed beyond the sellable units on hand at one position."""
    sellable = position.on_hand - position.damaged - position.quality_hold
    return max(0, position.reserved + position.committed - sellable)


async def check_stock(client: OmnistockClient, skus: int) -> StockCheck:
    """CheckConservation, then every position of SKU-00001.. read from the shards."""
    conservation = await client.check_conservation()
    positions = over = negative = 0
    numbers = list(range(1, skus + 1))
    for start in range(0, len(numbers), READ_CHUNK):
        chunk = [sku_id(n) for n in numbers[start : start + READ_CHUNK]]
        answer = await client.availability(chunk, include_nodes=True, consistent=True)
        for sku in answer.skus:
            for position in sku.nodes:
                positions += 1
                over += oversold(position)
                negative += position.available < 0
    return StockCheck(conservation.ok, list(conservation.problems), positions, over, negative)


async def check_expired(client: OmnistockClient, expiring: list[list[Any]]) -> tuple[int, int]:
    """(checked, still open) of the holds left to expire whose TTL passed."""
    due = [rid for rid, expires in expiring if expires < time.time() - EXPIRY_GRACE_SECONDS]
    sample = due[:: max(1, len(due) // EXPIRY_SAMPLE)][:EXPIRY_SAMPLE]
    still_open = 0
    for reservation_id in sample:
        reservation = await client.get_reservation(reservation_id)
        still_open += reservation.state == reservation_pb2.RESERVATION_STATE_HELD
    return len(sample), still_open


# --- the machine while it ran ---


def cpu_ticks() -> list[int]:
    """The machine's CPU time so far by kind (user nice system idle iowait irq softirq steal), in
    ticks; empty where /proc/stat is not there."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return []


def cpu_shares(before: list[int], after: list[int]) -> dict[str, float]:
    """Share of the machine's CPU time between two readings that was busy, idle, and stolen by
    the hypervisor (a shared VM's neighbours: the load generator and the service got less)."""
    if len(before) < 8 or len(after) < 8:
        return {}
    spent = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(spent) or 1
    idle, steal = spent[3] + spent[4], spent[7]
    return {
        "busy": round((total - idle - steal) / total, 3),
        "idle": round(idle / total, 3),
        "stolen": round(steal / total, 3),
    }


# --- the processes' CPU per call ---

CpuSnapshot = dict[str, dict[int, float]]
"""CPU seconds so far by role, then by pid (bench.CpuMeter.snapshot)."""


def once_a_sample(members: Callable[[], list[psutil.Process]]) -> Callable[[], list[psutil.Process]]:
    """`members`, listed at most once a half sample: every role of one snapshot walks one tree."""
    last: list[Any] = [-math.inf, []]

    def listed() -> list[psutil.Process]:
        if time.monotonic() - last[0] > CPU_SAMPLE_SECONDS / 2:
            last[:] = [time.monotonic(), members()]
        found: list[psutil.Process] = last[1]
        return found

    return listed


def service_roles(service: Process) -> dict[str, Callable[[], list[psutil.Process]]]:
    tree = once_a_sample(bench.process_tree(service))
    part_of = bench.process_parts(service)

    def of(role: str) -> Callable[[], list[psutil.Process]]:
        def members() -> list[psutil.Process]:
            found = []
            for process in tree():
                with contextlib.suppress(psutil.Error):
                    if part_of(process) == role:
                        found.append(process)
            return found

        return members

    return {role: of(role) for role in SERVICE_ROLES}


def locust_role(processes: list[Process]) -> Callable[[], list[psutil.Process]]:
    trees = [bench.process_tree(process) for process in processes]

    def members() -> list[psutil.Process]:
        found: list[psutil.Process] = []
        for tree in trees:
            with contextlib.suppress(psutil.Error):  # a worker that has ended
                found += tree()
        return found

    return members


def nearest(samples: list[tuple[float, CpuSnapshot]], at: float) -> tuple[float, CpuSnapshot]:
    return min(samples, key=lambda sample: abs(sample[0] - at))


def cpu_per_call(
    samples: list[tuple[float, CpuSnapshot]],
    window: tuple[float, float],
    calls: dict[str, int],
    locust_processes: int,
    service_measured: bool,
) -> CpuPerCall | None:
    """Core-ms per call over `window` (seconds since the epoch), whose calls by RPC are `calls`:
    the CPU per second between the samples nearest its edges over the calls per second in it."""
    seconds = window[1] - window[0]
    total = sum(calls.values())
    if len(samples) < 2 or seconds <= 0:
        return None
    (began, before), (ended, after) = nearest(samples, window[0]), nearest(samples, window[1])
    if ended <= began or not total:
        return None
    per_call = {
        role: round(spent / (ended - began) / (total / seconds) * 1000, 3)
        for role, spent in bench.CpuMeter.spent(before, after).items()
    }
    by_role = {role: per_call[role] for role in SERVICE_ROLES if role in per_call}
    return CpuPerCall(
        window_seconds=round(seconds, 1),
        calls=total,
        calls_per_second=round(total / seconds, 1),
        load_generator_processes=locust_processes,
        load_generator_core_ms=per_call.get("load generator"),
        service_core_ms=round(sum(by_role.values()), 3) if service_measured else None,
        service_by_role=by_role,
        service_note="" if service_measured else "not measurable: the service runs elsewhere (--target)",
        rates={name: round(count / seconds, 2) for name, count in sorted(calls.items())},
    )


# --- running it ---


@dataclass
class LocustRun:
    exit_code: int
    processes: int
    """Locust processes: the master and its workers, or one alone."""
    cpu_samples: list[tuple[float, CpuSnapshot]]
    """(seconds since the epoch, CPU by role) about every CPU_SAMPLE_SECONDS while it ran."""
    scenario_files: list[Path]
    master_file: Path


def locust_argv(
    args: argparse.Namespace,
    target: str,
    out: Path,
    role: str = "alone",
    master_port: int = 0,
) -> list[str]:
    """One Locust process: "alone" (no workers), the "master" (the shape, the stats and the
    report) or a "worker" (which one is in its environment: worker_env)."""
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", target,
        "--scenario-file", str(out / LOCUST_SCENARIOS),
        "--orders-per-second", str(args.orders_per_second), "--lines-per-order", str(args.lines_per_order),
        "--checks-per-order", str(args.checks_per_order),
        "--stock-updates-per-second", str(args.stock_updates_per_second),
        "--spike", str(args.spike), "--minutes", str(args.minutes), "--ramp-minutes", str(args.ramp_minutes),
        "--skus", str(DEMO_SKUS), "--loglevel", "WARNING",
    ]  # fmt: skip
    if role == "worker":  # the master on loopback only
        return [*argv, "--worker", "--master-host", "127.0.0.1", "--master-port", str(master_port)]
    argv += ["--csv", str(out / CSV_PREFIX), "--csv-full-history", "--html", str(out / "report.html")]
    if role == "master":
        argv += [
            "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
            "--expect-workers", str(args.processes), "--expect-workers-max-wait", str(WORKERS_WAIT_SECONDS),
        ]  # fmt: skip
    if args.headless:
        argv += ["--headless", "--only-summary"]
    else:  # the web UI shows the run live; Locust quits a minute after the shape ends
        argv += [
            "--web-host",
            "127.0.0.1",
            "--web-port",
            str(args.web_port),
            "--autostart",
            "--autoquit",
            "60",
        ]
    return argv


def progress_line(out: Path, began: float) -> str | None:
    """The latest Aggregated row of the stats history, in words."""
    with contextlib.suppress(OSError, StopIteration, KeyError, ValueError):
        with (out / f"{CSV_PREFIX}_stats_history.csv").open(newline="") as history:
            last = [r for r in csv.DictReader(history) if r["Name"] == "Aggregated"][-1]
        return (
            f"  {time.monotonic() - began:4.0f} s: {int(last['User Count'])} users,"
            f" {_number(last['Requests/s']):,.0f} calls/s, p99 {last['99%']} ms,"
            f" {int(last['Total Failure Count'])} failed so far"
        )
    return None


CREDENTIAL_ENVS = (TLS_CA_ENV, TLS_CERT_ENV, TLS_KEY_ENV, API_KEY_ENV, API_KEY_FILE_ENV)


def locust_env(credentials: Credentials) -> dict[str, str]:
    """Locust's environment: ours, with the target's TLS and key settings in place of any the
    shell had (its users read them with Credentials.from_env)."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name not in CREDENTIAL_ENVS and name != LOCUST_WORKER_ENV  # the workers' own, set per worker
    }
    return inherited | credentials.env()


def start_locust(
    name: str, argv: list[str], out: Path, credentials: Credentials, env: dict[str, str] | None = None
) -> Process:
    return processes.start(name, argv, out, env=locust_env(credentials) | (env or {}))


def worker_env(index: int, workers: int) -> dict[str, str]:
    """Names worker `index` of `workers` to the Locust file (its scenario file, its stores)."""
    return {LOCUST_WORKER_ENV: f"{index}/{workers}"}


async def run_locust(
    args: argparse.Namespace,
    target: str,
    out: Path,
    say: Callable[[str], None],
    credentials: Credentials | None = None,
    service: Process | None = None,
) -> LocustRun:
    """Locust alone (--processes 1) or a master and its workers, until the shape ends; the CPU
    of its processes (and of the service's, when started here) read all along."""
    credentials = credentials or Credentials()
    where = "headless" if args.headless else f"web UI on http://127.0.0.1:{args.web_port}"
    if args.processes > 1:
        port = free_port()
        processes = [start_locust("locust", locust_argv(args, target, out, "master", port), out, credentials)]
        worker_argv = locust_argv(args, target, out, "worker", port)
        processes += [
            start_locust(f"locust-worker-{i}", worker_argv, out, credentials, worker_env(i, args.processes))
            for i in range(args.processes)
        ]
        scenarios = Path(LOCUST_SCENARIOS)
        files = [out / f"{scenarios.stem}-worker-{i}{scenarios.suffix}" for i in range(args.processes)]
    else:
        processes = [start_locust("locust", locust_argv(args, target, out), out, credentials)]
        files = []
    master_file = out / LOCUST_SCENARIOS
    say(
        f"running Locust for {args.minutes:g} min ({where}; {len(processes)} processes;"
        f" log {out / 'locust.log'}) ..."
    )
    roles = {"load generator": locust_role(processes)}
    if service is not None:
        roles |= service_roles(service)
    meter = bench.CpuMeter(roles)
    samples = [(time.time(), meter.snapshot())]
    master = processes[0].popen
    began = time.monotonic()
    deadline = began + args.minutes * 60 + WORKERS_WAIT_SECONDS + 180  # start-up, stop, autoquit
    said = began
    try:
        while master.poll() is None:
            if time.monotonic() > deadline:
                say("Locust did not finish in time; stopping it")
                master.terminate()
                break
            await asyncio.sleep(CPU_SAMPLE_SECONDS)
            samples.append((time.time(), meter.snapshot()))
            if time.monotonic() - said >= PROGRESS_SECONDS and (line := progress_line(out, began)):
                say(line)
                said = time.monotonic()
        exit_code = master.wait(30)
        for worker in processes[1:]:  # they quit with their master
            worker.stop(30)
        return LocustRun(exit_code, len(processes), samples, [master_file, *files], master_file)
    finally:
        for process in processes:
            if process.popen.poll() is None:
                process.popen.kill()
                process.popen.wait()


@contextlib.asynccontextmanager
async def service_under_test(
    args: argparse.Namespace, say: Callable[[str], None]
) -> AsyncIterator[tuple[str, Process | None]]:
    """(the target, the service's process when started here): --target, or a service started
    here (stopped after)."""
    if args.target:
        await bench.wait_until_serving(None, args.target, bench.service_ready, bench.target_credentials(args))
        yield args.target, None
        return
    with tempfile.TemporaryDirectory(prefix="omnistock-loadtest-") as scratch:
        say(f"starting omnistock ({args.shards} shards, journal on) ...")
        service, target = bench.start_service(Path(scratch), args.shards, args.partitions, "always")
        try:
            await bench.wait_until_serving(service, target, bench.service_ready)
            yield target, service
        finally:
            service.stop()


LoadNetwork = Callable[[str, Callable[[str], None], Credentials], Awaitable[None]]
"""Puts the demo network and stock into the service at a target (reached with the
credentials), saying what it does (the command's own loader, as `omnistock serve --demo` uses)."""


def plan_of(args: argparse.Namespace) -> peak.Plan:
    """The plan of the command line's numbers; ValueError says which one is wrong."""
    normal = peak.NormalPeak(
        args.orders_per_second, args.lines_per_order, args.checks_per_order, args.stock_updates_per_second
    )
    return peak.plan(normal, args.spike, args.minutes, args.ramp_minutes)


async def loadtest(
    args: argparse.Namespace, say: Callable[[str], None], load_network: LoadNetwork
) -> Verdict:
    plan = plan_of(args)
    normal = plan.peak
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    users = ", ".join(f"{name} {c.users} x {c.per_user_rate:.2f}/s" for name, c in plan.classes.items())
    say(f"plan at {args.spike:g}x: {users}, marketplace {peak.MARKETPLACE_STREAMS} streams")
    credentials = bench.target_credentials(args)
    async with service_under_test(args, say) as (target, service):
        await load_network(target, say, credentials)
        began, ticks = time.monotonic(), cpu_ticks()
        run = await run_locust(args, target, out, say, credentials, service)
        ran, cpu = time.monotonic() - began, cpu_shares(ticks, cpu_ticks())
        say("checking stock: conservation, every position, the holds left to expire ...")
        report = read_scenarios(run)
        (out / "scenarios.json").write_text(json.dumps(report), encoding="utf-8")
        async with OmnistockClient(target, timeout=60.0, credentials=credentials) as client:
            stock = await check_stock(client, DEMO_SKUS)
            checked, still_open = await check_expired(client, report.get("expiring", []))
    hold_from, hold_to = hold_window(plan, ran)
    rpcs = (
        read_rpc_stats(out, peak.rpc_rates(normal, args.spike)) if (out / "peak_stats.csv").exists() else []
    )
    for rpc in rpcs:
        rpc.held_calls, rpc.held_p99_ms = held_latency(report, rpc.name, hold_from, hold_to)
    started = report.get("started", 0.0)
    per_call = cpu_per_call(
        run.cpu_samples,
        (started + hold_from, started + hold_to),
        held_calls(report, hold_from, hold_to),
        run.processes,
        service is not None,
    )
    if per_call is not None and args.bench:
        predict(per_call, args.bench)
    errors = sum(r.errors for r in rpcs) + exceptions_count(out)
    return Verdict(
        command=bench.command_line("loadtest"),
        target=args.target or "started by the load test",
        normal_peak=asdict(normal),
        spike=args.spike,
        minutes=args.minutes,
        ramp_minutes=args.ramp_minutes,
        users_at_spike={name: c.users for name, c in plan.classes.items()}
        | {peak.MARKETPLACE: peak.MARKETPLACE_STREAMS},
        scenarios=scenario_verdicts(plan, report, ran),
        rpcs=rpcs,
        errors=errors,
        error_messages=read_errors(out),
        conservation_ok=stock.conservation_ok,
        conservation_problems=stock.problems[:20],
        positions_checked=stock.positions,
        oversold_units=stock.oversold_units,
        negative_available_positions=stock.negative_available,
        expiring_checked=checked,
        expiring_still_open=still_open,
        locust_exit_code=run.exit_code,
        out=str(out),
        machine=bench.describe_machine() | {"cpu_during_run": cpu, "load_average_at_end": os.getloadavg()[0]},
        min_rate_ratio=args.min_rate_ratio,
        p99_budgets_ms=DEFAULT_P99_BUDGETS_MS | dict(args.p99_budget or []),
        cpu=per_call,
    )


def read_scenarios(run: LocustRun) -> dict[str, Any]:
    """The Locust processes' scenario files merged, counted from the master's start."""
    parts = []
    for path in run.scenario_files:
        with contextlib.suppress(OSError, ValueError):
            parts.append(json.loads(path.read_text(encoding="utf-8")))
    started = None
    with contextlib.suppress(OSError, ValueError, KeyError):
        started = float(json.loads(run.master_file.read_text(encoding="utf-8"))["started"])
    return merge_reports(parts, started)


def machine_lines(machine: dict[str, Any]) -> list[str]:
    cpu = machine.get("cpu_during_run") or {}
    if not cpu:
        return []
    return [
        f"machine            {machine.get('cpus')} CPUs; during the run {cpu['busy']:.0%} busy,"
        f" {cpu['idle']:.0%} idle, {cpu['stolen']:.0%} stolen by the hypervisor;"
        f" load average {machine['load_average_at_start'][0]} at start,"
        f" {machine['load_average_at_end']:.1f} at end"
    ]


def render(verdict: Verdict) -> str:
    normal = verdict.normal_peak
    lines = [
        f"normal peak: {normal['orders_per_second']:g} orders/s, {normal['lines_per_order']:g} lines/order,"
        f" {normal['checks_per_order']:g} checks/order,"
        f" {normal['stock_updates_per_second']:g} stock updates/s;"
        f" {verdict.spike:g}x held after a {verdict.ramp_minutes:g} min ramp, {verdict.minutes:g} min in all",
        "",
        f"{'scenario':<14}{'target/s':>10}{'achieved/s':>12}{'ratio':>8}  outcomes",
    ]
    for s in verdict.scenarios:
        target = "-" if s.target_per_second is None else f"{s.target_per_second:,.1f}"
        ratio = "-" if s.ratio is None else f"{s.ratio:.2f}"
        outcomes = ", ".join(f"{name} {count}" for name, count in s.outcomes.items())
        lines.append(f"{s.scenario:<14}{target:>10}{s.achieved_per_second:>12,.1f}{ratio:>8}  {outcomes}")
    lines += [
        "",
        f"{'rpc':<20}{'calls':>9}{'errors':>8}{'per s':>9}{'at spike':>10}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'held p99':>10}{'budget':>8}",
    ]
    for r in verdict.rpcs:
        expected = "-" if r.expected_per_second is None else f"{r.expected_per_second:,.1f}"
        held = "-" if r.held_p99_ms is None else f"{r.held_p99_ms:g}"
        budget = verdict.p99_budgets_ms.get(r.name)
        lines.append(
            f"{r.name:<20}{r.calls:>9,}{r.errors:>8}{r.per_second:>9,.1f}{expected:>10}{r.p50_ms:>8g}{r.p99_ms:>8g}"
            f"{held:>10}{'-' if budget is None else f'{budget:g}':>8}"
        )
    lines += [
        "",
        "achieved/s: mean while the spike was held; per s, p50, p99: over the whole run; at spike: the"
        " model's rate; held p99: while the spike was held, against its budget",
        "",
        *cpu_lines(verdict.cpu),
        f"errors             {verdict.errors}",
        *(f"  {message}" for message in verdict.error_messages[:10]),
        f"conservation       {'ok' if verdict.conservation_ok else 'BROKEN'}",
        *(f"  {problem}" for problem in verdict.conservation_problems[:10]),
        f"oversold units     {verdict.oversold_units} ({verdict.positions_checked:,} positions read from the"
        f" shards; {verdict.negative_available_positions} with available below zero)",
        f"holds left to expire  {verdict.expiring_checked} checked, {verdict.expiring_still_open} still open",
        f"report             {verdict.out}/report.html, {verdict.out}/{CSV_PREFIX}_*.csv",
        *machine_lines(verdict.machine),
        "",
        *(f"FAILED {rule.describe()}" for rule in verdict.rules() if not rule.met),
        "verdict: " + ("PASS" if verdict.passed else "FAIL"),
    ]
    return "\n".join(lines)


def prediction_lines(cpu: CpuPerCall) -> list[str]:
    if cpu.prediction_note:
        return [f"prediction         {cpu.prediction_note}"]
    if cpu.predicted_core_ms is None:
        return []
    measured = "not measured" if cpu.service_core_ms is None else f"measured {cpu.service_core_ms:.3f}"
    ratio = "" if cpu.measured_over_predicted is None else f" ({cpu.measured_over_predicted:.2f}x)"
    return [
        f"prediction         service CPU per call {measured} vs predicted {cpu.predicted_core_ms:.3f}"
        f" core-ms{ratio} (omnistock size's cost of the held rates, from --bench)",
        *(
            []
            if cpu.predicted_idle_core_ms is None
            else [
                f"                   predicted: the idle service {cpu.predicted_idle_core_ms:.3f} + the calls"
                f" finding it idle {cpu.predicted_core_ms - cpu.predicted_idle_core_ms:.3f} core-ms"
            ]
        ),
    ]


def cpu_lines(cpu: CpuPerCall | None) -> list[str]:
    """CPU per call while the spike was held: the load generator's, and the service's."""
    if cpu is None:
        return ["cpu per call       not measured (no call, or too short a hold)", ""]
    generator = "-" if cpu.load_generator_core_ms is None else f"{cpu.load_generator_core_ms:.3f}"
    if cpu.service_core_ms is None:
        service = cpu.service_note
    else:
        roles = ", ".join(f"{role} {ms:.3f}" for role, ms in cpu.service_by_role.items())
        service = f"{cpu.service_core_ms:.3f} core-ms per call ({roles})"
    return [
        f"load generator     {generator} core-ms per call ({cpu.load_generator_processes} Locust processes)",
        f"service CPU        {service}",
        *prediction_lines(cpu),
        f"                   over {cpu.window_seconds:g} s of the held spike, {cpu.calls:,} calls"
        f" ({cpu.calls_per_second:,.1f} a second)",
        "",
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", help="HOST:PORT of a running omnistock (default: start one); gets the demo network"
    )
    parser.add_argument(
        "--orders-per-second",
        type=float,
        default=1.0,
        help="normal peak: orders per second (default %(default)s)",
    )
    parser.add_argument(
        "--lines-per-order",
        type=float,
        default=2.5,
        help="normal peak: lines per order (default %(default)s)",
    )
    parser.add_argument(
        "--checks-per-order",
        type=float,
        default=30.0,
        help="normal peak: availability checks per order (default %(default)s)",
    )
    parser.add_argument(
        "--stock-updates-per-second",
        type=float,
        default=10.0,
        help="normal peak: positions changed by POS / WMS per second (default %(default)s)",
    )
    parser.add_argument(
        "--spike",
        type=float,
        default=50.0,
        help="x the normal peak held after the ramp (default %(default)s)",
    )
    parser.add_argument("--minutes", type=float, default=5.0, help="the whole run (default %(default)s)")
    parser.add_argument(
        "--ramp-minutes",
        type=float,
        default=1.0,
        help="from the normal peak to the spike (default %(default)s)",
    )
    parser.add_argument(
        "--headless", action="store_true", help="no web UI (default: Locust's UI on --web-port)"
    )
    parser.add_argument("--web-port", type=int, default=8089, help="Locust web UI port (default %(default)s)")
    parser.add_argument(
        "--out", default="var/loadtest", help="Locust's CSV and HTML report go here (default %(default)s)"
    )
    parser.add_argument(
        "--shards", type=int, default=2, help="shards of the service it starts (default %(default)s)"
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=256,
        help="partitions of the service it starts (default %(default)s)",
    )
    parser.add_argument(
        "--processes",
        type=positive_int,
        default=usable_cpus(),
        help="Locust processes that make the calls: N > 1 runs a master and N workers, 1 a single"
        " process (default %(default)s: one per usable core, as a Locust process uses one core)",
    )
    parser.add_argument(
        "--p99-budget",
        type=p99_budget,
        action="append",
        metavar="RPC=MS",
        help="p99 budget of an RPC while the spike is held, repeatable (defaults:"
        f" {', '.join(READ_RPCS)} {READ_BUDGET_MS:g} ms; {', '.join(WRITE_RPCS)} {WRITE_BUDGET_MS:g} ms;"
        f" {STREAM_RPC} {STREAM_BUDGET_MS:g} ms from a change to its update)",
    )
    parser.add_argument(
        "--min-rate-ratio",
        type=rate_ratio,
        default=MIN_RATE_RATIO,
        help="each scenario's rate while the spike is held, at least this share of its target"
        " (default %(default)s)",
    )
    parser.add_argument(
        "--bench",
        metavar="FILE",
        help="an `omnistock bench --json` report: the verdict shows the service's CPU per call"
        " against what `omnistock size` predicts from it for the rates held",
    )
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON on stdout")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def p99_budget(text: str) -> tuple[str, float]:
    """--p99-budget RPC=MS: (RPC, ms); an unknown RPC or a budget that is not a positive number
    is refused, naming what is wrong."""
    name, equals, ms = text.partition("=")
    name = name.strip()
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"wants RPC=MS (e.g. Reserve=100), got {text!r}")
    if name not in DEFAULT_P99_BUDGETS_MS:
        raise argparse.ArgumentTypeError(f"unknown RPC {name!r} (one of {', '.join(DEFAULT_P99_BUDGETS_MS)})")
    try:
        budget = float(ms)
    except ValueError:
        budget = math.nan
    if not budget > 0 or math.isinf(budget):
        raise argparse.ArgumentTypeError(f"the budget of {name} must be a positive number of ms, got {ms!r}")
    return name, budget


def rate_ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a share above 0 and at most 1, got {text!r}")
    return value


def run_loadtest(args: argparse.Namespace, load_network: LoadNetwork) -> int:
    """Exit status 0 when every rule is met: the rates and p99s while the spike was held,
    nothing failed, nothing was oversold and every due hold expired."""

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if importlib.util.find_spec("locust") is None:
        say("error: the load test runs Locust, which is not installed: pip install 'omnistock[loadtest]'")
        return 2
    try:
        plan_of(args)
    except ValueError as error:
        say(f"error: {error}")
        return 2
    try:
        verdict = asyncio.run(loadtest(args, say, load_network))
    except (RuntimeError, grpc.aio.AioRpcError) as error:
        say(f"error: {error}")
        return 1
    document = verdict.document()
    Path(verdict.out, "verdict.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    print(json.dumps(document, indent=2) if args.json else render(verdict))
    return 0 if verdict.passed else 1
