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
left to expire did expire. Exit status 1 on any error, oversold unit or hold left open.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc

from omnistock.client import (
    API_KEY_ENV,
    API_KEY_FILE_ENV,
    TLS_CA_ENV,
    TLS_CERT_ENV,
    TLS_KEY_ENV,
    Credentials,
    OmnistockClient,
)
from omnistock.loadtest import bench, peak
from omnistock.loadtest.datagen import sku_id
from omnistock.protos.gen.omnistock.v1 import reservation_pb2

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
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

    @property
    def passed(self) -> bool:
        return (
            self.errors == 0
            and self.oversold_units == 0
            and self.negative_available_positions == 0
            and self.conservation_ok
            and self.expiring_still_open == 0
            and self.locust_exit_code == 0
        )


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


def scenario_verdicts(plan: peak.Plan, report: dict[str, Any], ran_seconds: float) -> list[ScenarioVerdict]:
    """Each scenario's rate while the spike was held, against its target."""
    hold_from = plan.ramp_seconds + SETTLE_SECONDS
    hold_to = min(plan.total_seconds, ran_seconds) - 1  # the last second is cut short
    if hold_to - hold_from < 5:  # too short a hold to settle: the whole hold
        hold_from = plan.ramp_seconds
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


# --- running it ---


def locust_argv(args: argparse.Namespace, target: str, out: Path) -> list[str]:
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", target,
        "--csv", str(out / CSV_PREFIX), "--csv-full-history", "--html", str(out / "report.html"),
        "--scenario-file", str(out / "scenarios.json"),
        "--orders-per-second", str(args.orders_per_second), "--lines-per-order", str(args.lines_per_order),
        "--checks-per-order", str(args.checks_per_order),
        "--stock-updates-per-second", str(args.stock_updates_per_second),
        "--spike", str(args.spike), "--minutes", str(args.minutes), "--ramp-minutes", str(args.ramp_minutes),
        "--skus", str(DEMO_SKUS), "--loglevel", "WARNING",
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
    inherited = {name: value for name, value in os.environ.items() if name not in CREDENTIAL_ENVS}
    return inherited | credentials.env()


async def run_locust(
    args: argparse.Namespace,
    target: str,
    out: Path,
    say: Callable[[str], None],
    credentials: Credentials | None = None,
) -> int:
    argv = locust_argv(args, target, out)
    log = out / "locust.log"
    where = "headless" if args.headless else f"web UI on http://127.0.0.1:{args.web_port}"
    say(f"running Locust for {args.minutes:g} min ({where}; log {log}) ...")
    with log.open("wb") as sink:
        locust = subprocess.Popen(
            argv,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=locust_env(credentials or Credentials()),
        )
    began = time.monotonic()
    deadline = began + args.minutes * 60 + 180  # start-up, stop and the autoquit, generously
    said = began
    try:
        while locust.poll() is None:
            if time.monotonic() > deadline:
                say("Locust did not finish in time; stopping it")
                locust.terminate()
                break
            await asyncio.sleep(0.5)
            if time.monotonic() - said >= PROGRESS_SECONDS and (line := progress_line(out, began)):
                say(line)
                said = time.monotonic()
        return locust.wait(30)
    finally:
        if locust.poll() is None:
            locust.kill()
            locust.wait()


@contextlib.asynccontextmanager
async def service_under_test(args: argparse.Namespace, say: Callable[[str], None]) -> AsyncIterator[str]:
    """The target: --target, or a service started here (stopped after)."""
    if args.target:
        await bench.wait_until_serving(None, args.target, bench.service_ready, bench.target_credentials(args))
        yield args.target
        return
    with tempfile.TemporaryDirectory(prefix="omnistock-loadtest-") as scratch:
        say(f"starting omnistock ({args.shards} shards, journal on) ...")
        service, target = bench.start_service(Path(scratch), args.shards, args.partitions, "always")
        try:
            await bench.wait_until_serving(service, target, bench.service_ready)
            yield target
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
    async with service_under_test(args, say) as target:
        await load_network(target, say, credentials)
        began, ticks = time.monotonic(), cpu_ticks()
        exit_code = await run_locust(args, target, out, say, credentials)
        ran, cpu = time.monotonic() - began, cpu_shares(ticks, cpu_ticks())
        say("checking stock: conservation, every position, the holds left to expire ...")
        report: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            report = json.loads((out / "scenarios.json").read_text(encoding="utf-8"))
        async with OmnistockClient(target, timeout=60.0, credentials=credentials) as client:
            stock = await check_stock(client, DEMO_SKUS)
            checked, still_open = await check_expired(client, report.get("expiring", []))
    rpcs = (
        read_rpc_stats(out, peak.rpc_rates(normal, args.spike)) if (out / "peak_stats.csv").exists() else []
    )
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
        locust_exit_code=exit_code,
        out=str(out),
        machine=bench.describe_machine() | {"cpu_during_run": cpu, "load_average_at_end": os.getloadavg()[0]},
    )


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
        f"{'rpc':<20}{'calls':>9}{'errors':>8}{'per s':>9}{'at spike':>10}{'p50 ms':>8}{'p99 ms':>8}",
    ]
    for r in verdict.rpcs:
        expected = "-" if r.expected_per_second is None else f"{r.expected_per_second:,.1f}"
        lines.append(
            f"{r.name:<20}{r.calls:>9,}{r.errors:>8}{r.per_second:>9,.1f}{expected:>10}{r.p50_ms:>8g}{r.p99_ms:>8g}"
        )
    lines += [
        "",
        "achieved/s: mean while the spike was held; per s: over the whole run; at spike: the model's rate",
        "",
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
        "verdict: " + ("PASS" if verdict.passed else "FAIL"),
    ]
    return "\n".join(lines)


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
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON on stdout")


def run_loadtest(args: argparse.Namespace, load_network: LoadNetwork) -> int:
    """Exit status 0 when nothing failed, nothing was oversold and every due hold expired."""

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
    document = asdict(verdict) | {"passed": verdict.passed}
    Path(verdict.out, "verdict.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    print(json.dumps(document, indent=2) if args.json else render(verdict))
    return 0 if verdict.passed else 1
