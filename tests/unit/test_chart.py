"""The load test chart: Locust's stats history read per RPC and drawn to a small PNG."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnistock.loadtest import chart

HEADER = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,"
    "Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,"
    "Total Min Response Time,Total Max Response Time,Total Average Content Size"
)


def history(tmp_path: Path) -> Path:
    rows = [
        HEADER,
        "1000,0,,Aggregated,0.000000,0.000000,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,0,0,0,0.0,0,0,0",
    ]
    for second in range(1, 6):
        stamp, users = 1000 + second, 10 * second
        rows.append(
            f"{stamp},{users},grpc,Reserve,{second}.0,0,12,13,14,15,16,17,18,40,50,50,50,9,0,12,12,1,50,300"
        )
        rows.append(
            f"{stamp},{users},,Aggregated,{10 * second}.0,0,8,9,9,9,9,9,9,30,50,50,50,90,0,8,8,1,50,200"
        )
    path = tmp_path / "peak_stats_history.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_history_is_read_per_rpc_from_the_first_row(tmp_path: Path) -> None:
    series = chart.read_history(history(tmp_path))
    assert set(series) == {"Aggregated", "Reserve"}
    total, reserve = series["Aggregated"], series["Reserve"]
    assert total.seconds == [0, 1, 2, 3, 4, 5] and total.users == [0, 10, 20, 30, 40, 50]
    assert reserve.seconds == [1, 2, 3, 4, 5] and reserve.per_second == [1, 2, 3, 4, 5]
    assert reserve.p99_ms[0] == 40 and total.p50_ms[1] == 8
    assert total.p50_ms[0] != total.p50_ms[0]  # "N/A" before any call: NaN, a gap in the line


def test_the_chart_is_a_small_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "chart.png"
    assert chart.main([str(history(tmp_path)), "-o", str(target)]) == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert target.stat().st_size < 200 * 1024
    assert "wrote" in capsys.readouterr().out


def test_a_file_that_is_no_history_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    assert chart.main([str(other), "-o", str(tmp_path / "x.png")]) == 1
    assert "error:" in capsys.readouterr().err
