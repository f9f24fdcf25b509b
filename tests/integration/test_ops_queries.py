"""The dashboard and the rules query only metrics a running service really exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from omnistock.client import OmnistockClient, OmnistockRpcError, level, line
from tests.integration.conftest import NODES
from tests.integration.scrape import exported_names, scrape

OPS = Path(__file__).resolve().parents[2] / "ops"
DASHBOARD = json.loads((OPS / "grafana" / "omnistock.json").read_text())
RULES = yaml.safe_load((OPS / "prometheus" / "rules.yml").read_text())
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def metric_names(expr: str) -> set[str]:
    """Every metric a PromQL expression selects (raises on an expression that does not parse)."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def panels() -> list[dict[str, Any]]:
    return [panel for panel in DASHBOARD["panels"] if panel["type"] != "row"]


def rules() -> list[dict[str, Any]]:
    return [rule for group in RULES["groups"] for rule in group["rules"]]


def test_metric_names_are_found_in_expressions() -> None:
    expr = 'sum(rate(a_total{code="OK"}[$__rate_interval])) / on() group_left max(b:c) > 2 or d offset 5m'
    assert metric_names(expr) == {"a_total", "b:c", "d"}
    with pytest.raises(Exception):  # noqa: B017 - the parser's own error type
        metric_names("sum(rate(a[5m])")


def test_dashboard_has_the_on_call_overview_then_one_row_per_part() -> None:
    rows = [panel["title"] for panel in DASHBOARD["panels"] if panel["type"] == "row"]
    assert rows == ["Overview", "Reservations", "Availability", "Shards", "Journal"]
    assert all(panel["targets"] for panel in panels())


SEEN_BY_EVERY_GATEWAY = (
    "omnistock_units_held",
    "omnistock_units_committed",
    "omnistock_positions_sold_out",
    "omnistock_shard_up",
    "omnistock_shard_restarts_total",
)
"""Shard figures each gateway exports alike (README, Metrics and health): with several
gateways a sum over them would count each shard once per gateway."""


def test_figures_every_gateway_sees_are_taken_once_per_shard() -> None:
    queries = [t["expr"] for panel in panels() for t in panel["targets"]] + [r["expr"] for r in rules()]
    for expr in queries:
        if metric_names(expr) & set(SEEN_BY_EVERY_GATEWAY):
            assert "max by (shard)" in expr, expr


def test_rules_cover_what_pages_the_on_call() -> None:
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts >= {
        "OmnistockHighErrorRatio",
        "OmnistockLatencyOverBudget",
        "OmnistockJournalFailing",
        "OmnistockAvailabilityStale",
        "OmnistockShardRestarting",
        "OmnistockExpiryLagging",
    }


async def test_every_queried_metric_is_exported(make_service: Any) -> None:
    service = await make_service(metrics_port=0, stats_interval=0.2)
    async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
        await client.put_nodes(NODES)
        await client.set_stock([level("Q", "DC-1", 3)])
        await client.availability(["Q"])
        await client.reserve("q-1", [line("Q", "DC-1", 1)])
        await client.confirm("q-1")
        with pytest.raises(OmnistockRpcError):
            await client.reserve("q-2", [line("Q", "DC-1", 10)])
    exported = exported_names(scrape(service.metrics_port))
    recorded = {rule["record"] for rule in rules() if "record" in rule}

    unknown: dict[str, set[str]] = {}
    for panel in panels():
        for target in panel["targets"]:
            missing = metric_names(target["expr"]) - exported - recorded
            if missing:
                unknown[f"dashboard panel {panel['title']!r}"] = missing
    for rule in rules():
        missing = metric_names(rule["expr"]) - exported - recorded
        if missing:
            unknown[f"rule {rule.get('alert') or rule.get('record')}"] = missing
    assert not unknown, f"queries of metrics the service does not export: {unknown}"
