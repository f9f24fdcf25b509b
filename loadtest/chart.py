"""A chart of a load test over time, from Locust's stats history.

    python -m omnistock.loadtest.chart var/loadtest/peak_stats_history.csv -o docs/peak-day.png

Three panels sharing the time axis: calls per second by RPC (log scale, the total in
black), latency (p50 and p99 of all calls, p99 of the busiest RPCs), and the users Locust
ran. The history needs Locust's --csv-full-history for the per-RPC lines (`omnistock
loadtest` asks for it).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

AGGREGATED = "Aggregated"
LATENCY_RPCS = ("GetAvailability", "Reserve", "Fulfil")
"""RPCs whose p99 is drawn next to the overall p50 and p99."""


@dataclass
class Series:
    seconds: list[float] = field(default_factory=list)
    per_second: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    users: list[int] = field(default_factory=list)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # "N/A" while nothing was called yet
        return float("nan")


def read_history(path: Path) -> dict[str, Series]:
    """Series by RPC name (and "Aggregated"), time in seconds from the first row."""
    series: dict[str, Series] = defaultdict(Series)
    start: float | None = None
    with path.open(newline="") as history:
        for row in csv.DictReader(history):
            stamp = float(row["Timestamp"])
            start = stamp if start is None else start
            one = series[row["Name"]]
            one.seconds.append(stamp - start)
            one.per_second.append(_number(row["Requests/s"]))
            one.p50_ms.append(_number(row["50%"]))
            one.p99_ms.append(_number(row["99%"]))
            one.users.append(int(row["User Count"]))
    return dict(series)


def draw(series: dict[str, Series], target: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    total = series.get(AGGREGATED)
    if total is None:
        raise ValueError("no Aggregated rows: is this a Locust stats history?")
    figure, (rates, latency, users) = plt.subplots(
        3, 1, figsize=(10, 8), sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]}
    )
    figure.suptitle(title)
    rates.plot(total.seconds, total.per_second, color="black", linewidth=2, label="all calls")
    for name, one in sorted(series.items()):
        if name != AGGREGATED:
            rates.plot(one.seconds, one.per_second, linewidth=1, label=name)
    rates.set_yscale("log")
    rates.set_ylabel("calls / s")
    rates.legend(fontsize="small", ncol=3, loc="lower right")
    rates.grid(True, which="both", alpha=0.3)

    latency.plot(total.seconds, total.p50_ms, color="black", linewidth=1.5, label="p50, all calls")
    latency.plot(total.seconds, total.p99_ms, color="black", linestyle="--", label="p99, all calls")
    for name in LATENCY_RPCS:
        if name in series:
            latency.plot(series[name].seconds, series[name].p99_ms, linewidth=1, label=f"p99 {name}")
    latency.set_yscale("log")
    latency.set_ylabel("ms")
    latency.legend(fontsize="small", ncol=2, loc="upper left")
    latency.grid(True, which="both", alpha=0.3)

    users.plot(total.seconds, total.users, color="tab:purple")
    users.set_ylabel("users")
    users.set_xlabel("seconds since start")
    users.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(target, dpi=72)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m omnistock.loadtest.chart", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("history", type=Path, help="Locust's <prefix>_stats_history.csv")
    parser.add_argument("-o", "--output", type=Path, default=Path("peak-day.png"), help="PNG to write")
    parser.add_argument("--title", default="omnistock peak day: calls, latency and users over time")
    args = parser.parse_args(argv)
    try:
        draw(read_history(args.history), args.output, args.title)
    except (OSError, KeyError, ValueError) as error:
        print(f"error: {args.history}: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
