"""LoadStock's levels in columns: checked column by column, with the same rules as StockLevels."""

from __future__ import annotations

import math

import pytest

from omnistock.gateway.grpc.convert import Limits, levels_from_columns, levels_from_proto
from omnistock.protos.gen.omnistock.v1 import inventory_pb2
from omnistock.reservations.domain.errors import InvalidArgument

NOW = 1_700_000_000.0


def columns(**fields: object) -> inventory_pb2.StockColumns:
    base: dict[str, object] = {"sku": ["A", "A", "B"], "node_id": ["N1", "N2", "N1"], "on_hand": [5, 0, 7]}
    return inventory_pb2.StockColumns(**{**base, **fields})  # type: ignore[arg-type]


def problems(given: inventory_pb2.StockColumns) -> list[str]:
    with pytest.raises(InvalidArgument) as refused:
        levels_from_columns(given, Limits(), NOW)
    return [field for field, _ in refused.value.violations]


def test_columns_give_the_rows_that_stock_levels_give() -> None:
    given = columns(damaged=[1, 0, 0], quality_hold=[0, 0, 2], as_of_seconds=[NOW - 5, NOW - 5, NOW])
    as_levels = [
        inventory_pb2.StockLevel(sku=s, node_id=n, on_hand=h, damaged=d, quality_hold=q)
        for s, n, h, d, q in zip(
            given.sku, given.node_id, given.on_hand, given.damaged, given.quality_hold, strict=True
        )
    ]
    for message, seconds in zip(as_levels, given.as_of_seconds, strict=True):
        message.as_of.FromNanoseconds(int(seconds * 1e9))
    assert levels_from_columns(given, Limits(), NOW) == levels_from_proto(as_levels, Limits(), NOW)
    # Columns left out mean no damaged units and the server's receive time.
    # A SKU may come in two runs, at different nodes.
    assert (
        len(levels_from_columns(columns(sku=["A", "B", "A"], node_id=["N1", "N1", "N2"]), Limits(), NOW)) == 3
    )
    assert list(levels_from_columns(columns(), Limits(), NOW).rows()) == [
        ("A", "N1", 5, NOW, 0, 0),
        ("A", "N2", 0, NOW, 0, 0),
        ("B", "N1", 7, NOW, 0, 0),
    ]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"node_id": ["N1", "N2"]}, ["columns.node_id"]),
        ({"damaged": [1]}, ["columns.damaged"]),
        ({"sku": ["A", "A b", "B"]}, ["columns.sku[1]"]),
        ({"node_id": ["N1", "", "N1"]}, ["columns.node_id[1]"]),
        ({"node_id": ["N1", "N1", "N1"]}, ["columns[1]"]),
        ({"sku": ["A", "B", "A"], "node_id": ["N1", "N1", "N1"]}, ["columns[2]"]),  # a SKU in two runs
        ({"on_hand": [5, -1, 10**12]}, ["columns.on_hand[1]", "columns.on_hand[2]"]),
        ({"damaged": [6, 0, 0]}, ["columns[0]"]),
        (
            {"as_of_seconds": [NOW, NOW + 3600, math.nan]},
            ["columns.as_of_seconds[1]", "columns.as_of_seconds[2]"],
        ),
    ],
)
def test_every_bad_column_is_named(fields: dict[str, object], named: list[str]) -> None:
    assert problems(columns(**fields)) == named


def test_the_level_limit_counts_columns_and_messages_together() -> None:
    limits = Limits(max_levels=4)
    assert len(levels_from_columns(columns(), limits, NOW, already=1)) == 3
    with pytest.raises(InvalidArgument) as refused:
        levels_from_columns(columns(), Limits(max_levels=3), NOW, already=1)
    assert [field for field, _ in refused.value.violations] == ["columns.sku"]
