"""Limits under load, measured: what a gateway does when far more calls come than it takes in.

    python -m omnistock.loadtest.overload [--max-calls 2] [--crowd 128] [--seconds 8] [--json]

Starts `omnistock serve --max-calls N` in its own process (journal on, embedded Redis, as
`omnistock bench` does) and loads a small catalog. Then, for single-line Reserve and for
1-SKU availability in turn:

- a probe, in a process of its own, calls at a steady `--probe-rate` (open loop: each call
  timed from when it was due) and records what a client that is not itself overloaded sees:
  latency of the calls let in, share refused and the time a refusal took;
- unloaded: the probe alone, for the p99 to compare with;
- overload: the probe beside a crowd of `--crowd` callers in this process (many times the
  cap), each issuing its next call as soon as the last one ends. A refused call
  (RESOURCE_EXHAUSTED) waits what its RetryInfo says, doubled for each refusal in a row and
  jittered, as a well-behaved client does, then tries again.

The verdict compares the probe's p99 at overload with its unloaded p99 (the target: at most
twice). With --compare (the default) the same overload runs against the same service
started without a cap: what the cap spares the calls let in.

The probe runs apart because a load generator that is itself saturated times its own event
loop, not the service: its latencies grow with its callers whatever the service does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shlex
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from omnistock.loadtest.bench import (
    CHANNEL_OPTIONS,
    Catalog,
    describe_machine,
    one_line,
    prepare,
    service_ready,
    start_service,
    wait_until_serving,
)
from omnistock.protos.gen.omnistock.v1 import (
    availability_pb2,
    availability_pb2_grpc,
    reservation_pb2_grpc,
)

TARGET_RATIO = 2.0
"""The probe's p99 at overload, at most this many times its unloaded p99."""
MAX_BACKOFF_DOUBLINGS = 4
"""A caller refused again and again waits at most 2**4 times RetryInfo's delay (jittered)."""
CROWD_CONNECTIONS = 4
"""Connections the crowd shares (a fleet of clients, not one)."""
RPCS = ("reserve", "availability")
RPC_NAMES = {"reserve": "reserve 1 line", "availability": "availability 1 SKU"}

Call = Callable[[int], Awaitable[Any]]


@dataclass
class Seen:
    """What one client saw: latencies of calls let in and of refusals, other errors."""

    admitted: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class Phase:
    rpc: str
    phase: str
    max_calls: int
    """The gateway's cap of calls in flight (0: none)."""
    crowd: int
    """Callers of the crowd (0: the probe alone)."""
    seconds: float
    probe_rate: float
    probe_admitted: int
    probe_refused: int
    probe_p50_ms: float
    probe_p99_ms: float
    probe_max_ms: float
    probe_refuse_p50_ms: float
    probe_refuse_p99_ms: float
    crowd_admitted_per_second: float
    crowd_refused_share: float
    crowd_refuse_p99_ms: float
    errors: dict[str, int]


def percentile_ms(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000, 2)


def retry_delay(error: grpc.aio.AioRpcError) -> float:
    """RetryInfo's delay in seconds (0.05 when the refusal carries none)."""
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            return float(retry.retry_delay.ToNanoseconds()) / 1e9
    return 0.05


def make_call(rpc: str, channels: list[grpc.aio.Channel], catalog: Catalog, run: str) -> Call:
    if rpc == "reserve":
        reservations = [reservation_pb2_grpc.ReservationServiceStub(c) for c in channels]
        return lambda n: reservations[n % len(reservations)].Reserve(
            one_line(catalog, f"{run}-{n}", n), timeout=30
        )
    availability = [availability_pb2_grpc.AvailabilityServiceStub(c) for c in channels]
    skus = catalog.skus
    return lambda n: availability[n % len(availability)].GetAvailability(
        availability_pb2.GetAvailabilityRequest(skus=[skus[n * 7919 % len(skus)]]), timeout=30
    )


async def timed(call: Awaitable[Any], started: float, seen: Seen, window: tuple[float, float]) -> float:
    """Await `call`, filing its latency from `started` under what it got; RetryInfo's delay
    when refused, else 0."""
    wait = 0.0
    try:
        await call
        outcome = seen.admitted
    except grpc.aio.AioRpcError as error:
        if error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
            outcome, wait = seen.refused, retry_delay(error)
        else:
            outcome = []
            if window[0] <= time.perf_counter() < window[1]:
                seen.errors[error.code().name] += 1
    done = time.perf_counter()
    if window[0] <= done < window[1]:
        outcome.append(done - started)
    return wait


async def crowd(call: Call, callers: int, window: tuple[float, float]) -> Seen:
    """`callers` callers back to back until the window closes; refused ones back off."""
    seen = Seen()

    async def caller(first: int) -> None:
        n, streak = first, 0
        while time.perf_counter() < window[1]:
            wait = await timed(call(n), time.perf_counter(), seen, window)
            if wait:
                await asyncio.sleep(wait * 2 ** min(streak, MAX_BACKOFF_DOUBLINGS) * random.uniform(0.5, 1.5))
                streak += 1
            else:
                streak = 0
            n += callers

    await asyncio.gather(*(caller(i) for i in range(callers)))
    return seen


async def probe(call: Call, rate: float, window: tuple[float, float]) -> Seen:
    """Calls due at `rate` a second until the window closes, each timed from when it was due."""
    seen = Seen()
    tasks: set[asyncio.Task[float]] = set()
    begins, n = time.perf_counter(), 0
    while (due := begins + n / rate) < window[1]:
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        task = asyncio.create_task(timed(call(n), due, seen, window))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    await asyncio.gather(*tasks)
    return seen


async def run_client(args: argparse.Namespace) -> dict[str, Any]:
    """A client process (`--role`): the probe on one connection of its own, or the crowd on
    CROWD_CONNECTIONS; both on the catalog the service was loaded with. Its window opens
    `--warmup` seconds after it starts."""
    catalog = Catalog(args.skus, args.partitions, args.shards)
    connections = 1 if args.role == "probe" else CROWD_CONNECTIONS
    async with contextlib.AsyncExitStack() as stack:
        channels = [
            await stack.enter_async_context(grpc.aio.insecure_channel(args.target, options=CHANNEL_OPTIONS))
            for _ in range(connections)
        ]
        call = make_call(args.rpc, channels, catalog, args.run)
        opens = time.perf_counter() + args.warmup
        window = (opens, opens + args.seconds)
        seen = await (
            probe(call, args.probe_rate, window) if args.role == "probe" else crowd(call, args.crowd, window)
        )
    return {"admitted": seen.admitted, "refused": seen.refused, "errors": dict(seen.errors)}


async def start_client(
    args: argparse.Namespace, role: str, target: str, rpc: str, run: str
) -> asyncio.subprocess.Process:
    """The probe at the service's priority; the crowd at the lowest when pinned, so that on the
    clients' cores the probe runs when it has something to do, as on a machine of its own."""
    argv = [
        sys.executable, "-m", "omnistock.loadtest.overload", "--role", role, "--target", target,
        "--rpc", rpc, "--run", run, "--crowd", str(args.crowd), "--probe-rate", str(args.probe_rate),
        "--seconds", str(args.seconds), "--warmup", str(args.warmup),
        "--skus", str(args.skus), "--partitions", str(args.partitions), "--shards", str(args.shards),
    ]  # fmt: skip
    lowest = role == "crowd" and args.cores is not None
    return await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, preexec_fn=(lambda: os.nice(19)) if lowest else None
    )


async def finished(process: asyncio.subprocess.Process, role: str) -> dict[str, Any]:
    output, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"the {role} failed with exit status {process.returncode}")
    found: dict[str, Any] = json.loads(output)
    return found


async def run_phase(args: argparse.Namespace, target: str, rpc: str, phase: str, max_calls: int) -> Phase:
    run = f"{phase.replace(' ', '').replace(',', '')}-{random.getrandbits(32):08x}"
    callers = 0 if phase == "unloaded" else args.crowd
    probing = await start_client(args, "probe", target, rpc, f"probe-{run}")
    crowding = await start_client(args, "crowd", target, rpc, f"crowd-{run}") if callers else None
    probed = await finished(probing, "probe")
    crowded = await finished(crowding, "crowd") if crowding else {"admitted": [], "refused": [], "errors": {}}
    admitted, refused = probed["admitted"], probed["refused"]
    tried = len(crowded["admitted"]) + len(crowded["refused"])
    errors = Counter(probed["errors"]) + Counter(crowded["errors"])
    return Phase(
        RPC_NAMES[rpc],
        phase,
        max_calls,
        callers,
        args.seconds,
        args.probe_rate,
        len(admitted),
        len(refused),
        percentile_ms(admitted, 0.5),
        percentile_ms(admitted, 0.99),
        percentile_ms(admitted, 1.0),
        percentile_ms(refused, 0.5),
        percentile_ms(refused, 0.99),
        round(len(crowded["admitted"]) / args.seconds, 1),
        round(len(crowded["refused"]) / tried, 3) if tried else 0.0,
        percentile_ms(crowded["refused"], 0.99),
        dict(errors),
    )


def pinned_cores(pin: bool) -> tuple[set[int], set[int]] | None:
    """(the service's cores, the clients'): the first usable core for the service, the rest for
    the crowd and the probe, as if the clients ran on other machines; None when not pinning."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return None
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        return None
    return {usable[0]}, set(usable[1:])


@contextlib.asynccontextmanager
async def service(
    args: argparse.Namespace, workdir: Path, max_calls: int, say: Callable[[str], None]
) -> AsyncIterator[str]:
    """An omnistock with `--max-calls max_calls`, its catalog loaded: where it listens."""
    say(f"starting omnistock --max-calls {max_calls} ({args.shards} shard(s)) ...")
    where = workdir / f"max-calls-{max_calls}"
    where.mkdir()
    cores = args.cores
    if cores is not None:  # the service inherits the first core, the clients keep the others
        os.sched_setaffinity(0, cores[0])
    try:
        process, target = start_service(
            where,
            args.shards,
            args.partitions,
            "always",
            extra=["--max-calls", str(max_calls), *(shlex.split(args.serve) if max_calls else [])],
        )
    finally:
        if cores is not None:
            os.sched_setaffinity(0, cores[1])
    try:
        await wait_until_serving(process, target, service_ready)
        async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
            await prepare(channel, Catalog(args.skus, args.partitions, args.shards), say)
        yield target
    finally:
        process.stop()


async def overload(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    machine = describe_machine()
    args.cores = pinned_cores(args.pin)  # once: the first service narrows this process's cores
    phases: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="omnistock-overload-") as scratch:
        for cap in [args.max_calls] + ([0] if args.compare else []):
            async with service(args, Path(scratch), cap, say) as target:
                for rpc in RPCS:
                    runs = (
                        [("unloaded", 0), ("overload", args.crowd)]
                        if cap
                        else [("overload, no cap", args.crowd)]
                    )
                    for name, callers in runs:
                        what = f"probe at {args.probe_rate:g}/s, crowd of {callers}"
                        say(f"{RPC_NAMES[rpc]}: {name} ({what}) ...")
                        phases.append(await run_phase(args, target, rpc, name, cap))
    return {
        "machine": machine,
        "command": shlex.join(["python", "-m", "omnistock.loadtest.overload", *sys.argv[1:]]),
        "settings": {
            "max_calls": args.max_calls,
            "serve_flags": args.serve,
            "crowd": args.crowd,
            "crowd_connections": CROWD_CONNECTIONS,
            "probe_rate": args.probe_rate,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "shards": args.shards,
            "pinned": args.cores is not None,
        },
        "phases": [asdict(phase) for phase in phases],
        "verdicts": verdicts(phases),
    }


def verdicts(phases: list[Phase]) -> list[dict[str, Any]]:
    """Per RPC: the probe's p99 at overload over its unloaded p99, against TARGET_RATIO."""
    found = []
    for rpc in dict.fromkeys(phase.rpc for phase in phases):
        by_name = {phase.phase: phase for phase in phases if phase.rpc == rpc}
        unloaded, loaded = by_name.get("unloaded"), by_name.get("overload")
        if unloaded is None or loaded is None or not unloaded.probe_p99_ms:
            continue
        ratio = loaded.probe_p99_ms / unloaded.probe_p99_ms
        found.append(
            {
                "rpc": rpc,
                "unloaded_p99_ms": unloaded.probe_p99_ms,
                "admitted_p99_ms": loaded.probe_p99_ms,
                "ratio": round(ratio, 2),
                "met": ratio <= TARGET_RATIO,
            }
        )
    return found


def render(report: dict[str, Any]) -> str:
    machine, settings = report["machine"], report["settings"]
    lines = [
        f"machine: {machine['cpus']} CPUs ({machine['cpu_model'] or 'unknown'}), Python {machine['python']},"
        f" grpcio {machine['grpcio']}, load average at start {machine['load_average_at_start'][0]}",
        f"--max-calls {settings['max_calls']} {settings['serve_flags']}".rstrip()
        + f"; crowd of {settings['crowd']} callers over"
        f" {settings['crowd_connections']} connections; probe at {settings['probe_rate']:g} calls/s"
        + ("; service on one core, clients on the other(s)" if settings["pinned"] else ""),
        "",
        f"{'rpc':<20}{'phase':<18}{'probe p50':>10}{'p99':>8}{'refused':>9}{'refuse p99':>11}"
        f"{'crowd let in/s':>16}{'refused':>9}{'refuse p99':>11}{'errors':>7}",
    ]
    for p in report["phases"]:
        tried = p["probe_admitted"] + p["probe_refused"]
        share = p["probe_refused"] / tried if tried else 0.0
        crowd_cells = (
            f"{p['crowd_admitted_per_second']:>16,.0f}{p['crowd_refused_share']:>9.1%}{p['crowd_refuse_p99_ms']:>11.2f}"
            if p["crowd"]
            else f"{'-':>16}{'-':>9}{'-':>11}"
        )
        lines.append(
            f"{p['rpc']:<20}{p['phase']:<18}{p['probe_p50_ms']:>10.2f}{p['probe_p99_ms']:>8.2f}{share:>9.1%}"
            f"{p['probe_refuse_p99_ms']:>11.2f}{crowd_cells}{sum(p['errors'].values()):>7}"
        )
    lines.append("(milliseconds; the probe's p50 and p99 are of its calls let in)")
    if report["verdicts"]:
        lines += ["", f"{'rpc':<20}{'p99 at overload / unloaded':>28}  target <= {TARGET_RATIO:g}x"]
        for v in report["verdicts"]:
            lines.append(f"{v['rpc']:<20}{v['ratio']:>27.2f}x  {'met' if v['met'] else 'NOT met'}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-calls", type=int, default=2, help="the gateway's cap of calls in flight (default %(default)s)"
    )
    parser.add_argument("--crowd", type=int, default=128, help="callers of the crowd (default %(default)s)")
    parser.add_argument(
        "--probe-rate", type=float, default=100.0, help="calls a second of the probe (default %(default)s)"
    )
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="measured seconds per run (default %(default)s)"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="unmeasured seconds before each (default %(default)s)"
    )
    parser.add_argument("--shards", type=int, default=1, help="shards of the service (default %(default)s)")
    parser.add_argument("--partitions", type=int, default=64, help="partitions (default %(default)s)")
    parser.add_argument("--skus", type=int, default=2_000, help="SKUs loaded (default %(default)s)")
    parser.add_argument(
        "--compare",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the overload against the service without a cap (default: on)",
    )
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the service on the first core and the clients on the others, as if they came from"
        " other machines (default: on, with 2 cores or more)",
    )
    parser.add_argument(
        "--serve",
        default="",
        metavar="FLAGS",
        help='more `omnistock serve` flags for the service with the cap, e.g. "--max-delay-ms 5"',
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    # The probe process (started by the run itself).
    # The client processes a run starts.
    parser.add_argument("--role", choices=("probe", "crowd"), help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--rpc", choices=RPCS, default="reserve", help=argparse.SUPPRESS)
    parser.add_argument("--run", default="client", help=argparse.SUPPRESS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m omnistock.loadtest.overload",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.role:
        print(json.dumps(asyncio.run(run_client(args))))
        return 0
    if args.max_calls < 1 or args.crowd <= args.max_calls or args.probe_rate <= 0:
        parser.error("needs --max-calls >= 1, a --crowd larger than it and a --probe-rate above 0")

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    report = asyncio.run(overload(args, say))
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 1 if any(phase["errors"] for phase in report["phases"]) else 0


if __name__ == "__main__":
    sys.exit(main())
