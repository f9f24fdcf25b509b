"""Batches cross the Ray boundary as bytes (reservations.wire): everything comes back equal."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from omnistock.availability.positions import PositionView
from omnistock.reservations.domain.commands import (
    ClaimOutcome,
    ClaimResult,
    CloseLines,
    HoldOutcome,
    HoldResult,
    PartOutcome,
    PartResult,
    PlaceHold,
    RecordClaim,
)
from omnistock.reservations.domain.model import Claim, Line, Part, PartState
from omnistock.reservations.domain.sourcing import Destination, LineSourcing, NodeVerdict
from omnistock.reservations.shard import wire
from omnistock.reservations.shard.state import WrongShard
from omnistock.reservations.shard.wire import BatchReply


def test_a_batch_and_its_reply_come_back_equal() -> None:
    line = Line("SKU-1", "DC-1", 2)
    verdicts = (NodeVerdict("DC-1", 2, "nearest", 1.5), NodeVerdict("DC-2", 0, "lost on nearest"))
    sourcing = LineSourcing("SKU-1", 2, ("nearest",), verdicts, 3)
    batch = [
        RecordClaim(1, "order-1", "fp", (1, 2), 10.0, (sourcing,), Destination(51.5, -0.1)),
        PlaceHold(
            2, "order-1", "fp", (line,), 10.0, 70.0, "web", (), "c-1", (("SKU-1", 2),), (("DC-1", 5, 3),)
        ),
        CloseLines(2, "order-1", "ship-1", "fulfilled", (line,), 11.0, check_only=True),
    ]
    part = Part(
        "order-1", "fp", (line,), PartState.HELD, 10.0, 70.0, history=(("held", 10.0),), fulfilled=(1,)
    )
    reply = BatchReply(
        [
            ClaimResult(ClaimOutcome.RECORDED, Claim("order-1", "fp", (1, 2), 10.0, (sourcing,))),
            HoldResult(HoldOutcome.PLACED, part),
            PartResult(PartOutcome.REFUSED, part, PartState.HELD, "why"),
            WrongShard(7),
        ],
        0.001,
        0.002,
        3,
        ("epoch", 12),
        11,
        [PositionView("SKU-1", "DC-1", 10, 2, 1, 9.0, by_channel=(("web", 2),))],
        busy_seconds=0.004,
    )
    assert wire.unpack(wire.pack(batch)) == batch
    back = wire.unpack(wire.pack(reply))
    assert back == reply
    assert back.results[1].part.history == (("held", 10.0),)  # left out of ==, so checked here


def test_a_class_that_cannot_be_rebuilt_from_its_fields_is_refused() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Derived:
        a: int
        b: int = dataclasses.field(init=False, default=0)

    with pytest.raises(TypeError, match="cannot be rebuilt"):
        wire.by_fields(Derived)


def test_packing_sends_field_values_and_a_rebuilt_object_stays_frozen() -> None:
    line = Line("SKU-1", "DC-1", 2)
    _, (cls, values) = line.__reduce__()
    assert (cls, values) == (Line, ("SKU-1", "DC-1", 2))
    back = pickle.loads(wire.pack(line))
    assert back == line and type(back) is Line
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.quantity = 3  # type: ignore[misc]


def test_a_class_with_post_init_is_refused() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            assert self.a > 0

    with pytest.raises(TypeError, match="__post_init__"):
        wire.by_fields(Checked)
