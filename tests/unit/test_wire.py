"""Batches cross between gateways and shards as msgpack bytes (reservations/shard/wire.py):
everything registered comes back equal and of the same types, and bytes that are anything else
raise WireError without running or building anything."""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import pickle
import types
import typing
from array import array
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnistock.availability import atp, positions
from omnistock.availability.positions import PositionView
from omnistock.reservations.domain import commands, model, sourcing
from omnistock.reservations.domain.commands import (
    ClaimOutcome,
    ClaimResult,
    CloseLines,
    DecisionOutcome,
    DecisionResult,
    HoldOutcome,
    HoldResult,
    PartOutcome,
    PartResult,
    PlaceHold,
    RecordClaim,
)
from omnistock.reservations.domain.model import (
    Claim,
    Decision,
    Follow,
    Intent,
    LevelColumns,
    Line,
    Part,
    PartState,
)
from omnistock.reservations.domain.sourcing import Destination, LineSourcing, NodeVerdict
from omnistock.reservations.shard import state, wire
from omnistock.reservations.shard.state import Changes, Handoff, WrongShard
from omnistock.reservations.shard.wire import BatchReply, WireError

REGISTERED = dict((cls, code) for code, cls in wire.REGISTRY)
DATACLASSES = sorted((cls for cls in REGISTERED if dataclasses.is_dataclass(cls)), key=lambda c: c.__name__)


def hints(cls: type) -> dict[str, Any]:
    return wire._hints(cls)


def as_data(value: Any) -> Any:
    """`value` with every type spelled out, fields left out of == included: two values are
    the same on the wire when these are equal (a list is not a tuple, an IntEnum not an int)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return (type(value).__name__, *(as_data(getattr(value, f.name)) for f in fields))
    if isinstance(value, enum.Enum):
        return (type(value).__name__, value.value)
    if isinstance(value, list | tuple):
        return (type(value).__name__, *(as_data(item) for item in value))
    if isinstance(value, dict):
        return ("dict", sorted((repr(k), as_data(v)) for k, v in value.items()))
    if isinstance(value, frozenset):
        return ("frozenset", sorted(repr(item) for item in value))
    if isinstance(value, array):
        return ("array", value.typecode, value.tolist())
    return (type(value).__name__, value)


# --- a representative batch and reply ---


def test_a_batch_and_its_reply_come_back_equal_and_of_the_same_types() -> None:
    line = Line("SKU-1", "DC-1", 2)
    verdicts = (NodeVerdict("DC-1", 2, "nearest", 1.5), NodeVerdict("DC-2", 0, "lost on nearest"))
    sourced = LineSourcing("SKU-1", 2, ("nearest",), verdicts, 3)
    batch = [
        RecordClaim(1, "order-1", "fp", (1, 2), 10.0, (sourced,), Destination(51.5, -0.1)),
        PlaceHold(
            2,
            "order-1",
            "fp",
            (line,),
            10.0,
            70.0,
            "web",
            (atp.ChannelLimit(2, 5.0),),
            "c-1",
            (("SKU-1", 2),),
            (("DC-1", 5, 3),),
        ),
        CloseLines(2, "order-1", "ship-1", "fulfilled", (line,), 11, check_only=True),
    ]
    part = Part(
        "order-1",
        "fp",
        (line,),
        PartState.HELD,
        10.0,
        70.0,
        history=(("held", 10.0, "local"),),
        fulfilled=(1,),
        operations=frozenset({"close:ship-1\t1"}),
    )
    claim = Claim("order-1", "fp", (1, 2), 10.0, (sourced,), decision=Decision.CONFIRMED, expires_at=math.inf)
    intent = Intent("confirm@11", ((2, Follow(PartState.CONFIRMED, 11.0, 70.0, 2)),))
    reply = BatchReply(
        [
            ClaimResult(ClaimOutcome.RECORDED, claim),
            HoldResult(HoldOutcome.PLACED, part),
            PartResult(PartOutcome.REFUSED, part, PartState.HELD, "why"),
            DecisionResult(
                DecisionOutcome.DECIDED,
                claim,
                Decision.CONFIRMED,
                intent,
                ((2, PartResult(PartOutcome.CHANGED)),),
            ),
            WrongShard(7),
            commands.StockResult(
                True, PositionView("SKU-1", "DC-1", 10, 2, 1, 9.0, by_channel=(("web", 2),))
            ),
        ],
        0.001,
        0.002,
        3,
        ("epoch", 12),
        11,
        [
            ("SKU-1", "DC-1", 10, 2, 1, 9.0, 0, 0, (("web", 2),), ()),
            ("SKU-2", "DC-1", 1, 0, 0, 2.5, 0, 0, (), ((3.0, 4),)),
        ],
        [("SKU-9", ("DC-1", "DC-2"), array("q", [5, 6]), array("d", [1.5, 2.5]))],
        busy_seconds=0.004,
        handoffs=[Handoff(1, "order-1", intent)],
    )
    assert wire.unpack_commands(wire.pack(batch)) == batch
    back = wire.unpack_reply(wire.pack(reply))
    assert back == reply
    assert as_data(back) == as_data(reply)  # history (left out of ==), list vs tuple, enums
    assert type(back.results) is list and type(back.changed) is list and type(back.handoffs) is list
    assert back.results[1].part.state is PartState.HELD  # an IntEnum again, not the int it travelled as
    assert type(back.results[5].position) is PositionView  # a NamedTuple again


def test_a_rebuilt_object_stays_frozen_and_no_constructor_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    packed = wire.pack(Line("SKU-1", "DC-1", 2))

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a constructor ran")

    monkeypatch.setattr(Line, "__init__", refuse)
    back = wire.unpack(packed)
    assert type(back) is Line and (back.sku, back.node_id, back.quantity) == ("SKU-1", "DC-1", 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.quantity = 3  # type: ignore[misc]


# --- the registry ---


def test_codes_are_fixed_and_each_names_one_class() -> None:
    codes = [code for code, _ in wire.REGISTRY]
    classes = [cls for _, cls in wire.REGISTRY]
    assert len(set(codes)) == len(codes) and len(set(classes)) == len(classes)
    assert all(0 < code < 1 << 16 for code in codes)
    assert codes == sorted(codes)  # new classes take new codes at the end of their block
    # A few codes pinned: bytes packed by one version mean the same class to another.
    assert (REGISTERED[Line], REGISTERED[PlaceHold], REGISTERED[BatchReply]) == (1, 44, 127)


def defined_in(*modules: types.ModuleType) -> set[type]:
    return {
        value
        for module in modules
        for name, value in vars(module).items()
        if isinstance(value, type) and value.__module__ == module.__name__ and not name.startswith("_")
    }


def test_every_frozen_slots_dataclass_and_enum_of_the_batch_modules_is_registered() -> None:
    found = defined_in(commands, model, sourcing, state, atp, wire)
    frozen = {
        cls
        for cls in found
        if dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen and "__slots__" in vars(cls)  # type: ignore[attr-defined]
    }
    enums = {cls for cls in found if issubclass(cls, enum.Enum)}
    assert frozen - set(REGISTERED) == set()
    assert enums - set(REGISTERED) == set()


def reachable(tp: Any, seen: set[type]) -> None:
    """Every class a value declared `tp` may hold, at any depth."""
    if isinstance(tp, type):
        if tp in seen:
            return
        if dataclasses.is_dataclass(tp):
            seen.add(tp)
            for hint in hints(tp).values():
                reachable(hint, seen)
        elif issubclass(tp, enum.Enum):
            seen.add(tp)
        elif issubclass(tp, tuple) and hasattr(tp, "_fields"):
            for hint in typing.get_type_hints(tp).values():
                reachable(hint, seen)
    if typing.get_origin(tp) is frozenset:
        seen.add(frozenset)
    for arg in typing.get_args(tp):
        reachable(arg, seen)


def test_everything_a_batch_a_reply_or_the_change_feed_can_hold_is_registered() -> None:
    seen: set[type] = set()
    for root in (commands.Command, BatchReply, Changes):
        reachable(root, seen)
    assert seen - set(REGISTERED) == set()
    assert {PlaceHold, Part, Claim, Intent, Follow, Destination, atp.ChannelLimit, LevelColumns} <= seen


def test_a_class_that_cannot_be_rebuilt_from_its_fields_is_refused() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Derived:
        a: int
        b: int = dataclasses.field(init=False, default=0)

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            assert self.a > 0

    with pytest.raises(TypeError, match="cannot be rebuilt"):
        wire.check_rebuildable(Derived)
    with pytest.raises(TypeError, match="__post_init__"):
        wire.check_rebuildable(Checked)


def test_a_class_not_registered_cannot_be_packed() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Stranger:
        a: int

    with pytest.raises(TypeError, match=r"not in wire\.REGISTRY"):
        wire.pack([Stranger(1)])
    assert wire.unpack(wire.pack(Line("A", "B", 1))) == Line("A", "B", 1)  # the packer is clean after


# --- round trips of every registered class, over representative values ---

BIG = st.integers(min_value=-(2**80), max_value=2**80)
FLOATS = st.floats(allow_nan=False) | st.integers(-5, 5)  # an int may stand for a float


def values_of(tp: Any) -> st.SearchStrategy[Any]:
    """Values of a declared type: big ints, infinities, empty and nested containers, None."""
    if tp is str:
        return st.text(max_size=6)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return BIG
    if tp is float:
        return FLOATS
    if tp is bytes:
        return st.binary(max_size=6)
    if tp is type(None):
        return st.none()
    if tp is wire._Ints:
        return st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4).map(lambda v: array("q", v))
    if tp is wire._Floats:
        return st.lists(st.floats(allow_nan=False), max_size=4).map(lambda v: array("d", v))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields"):
        named = typing.get_type_hints(tp)
        return st.tuples(*(values_of(named[f]) for f in tp._fields)).map(tp._make)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        fields = hints(tp)
        return st.tuples(*(values_of(fields[f.name]) for f in dataclasses.fields(tp))).map(lambda v: tp(*v))
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return st.one_of(*(values_of(arg) for arg in args))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return st.lists(values_of(args[0]), max_size=3).map(tuple)
    if origin is tuple:
        return st.tuples(*(values_of(arg) for arg in args))
    if origin is list:
        return st.lists(values_of(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(values_of(args[0]), values_of(args[1]), max_size=3)
    if origin is frozenset:
        return st.frozensets(values_of(args[0]), max_size=3)
    raise AssertionError(f"no strategy for {tp!r}")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_every_registered_class_comes_back_as_it_went(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(DATACLASSES))
    value = data.draw(values_of(cls))
    back = wire.unpack(wire.pack(value))
    assert as_data(back) == as_data(value)


COMMAND_CLASSES = sorted(wire.COMMANDS, key=lambda c: c.__name__)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_a_batch_of_any_commands_comes_back_as_a_list_of_them(data: st.DataObject) -> None:
    kinds = data.draw(st.lists(st.sampled_from(COMMAND_CLASSES), max_size=4))
    batch = [data.draw(values_of(kind)) for kind in kinds]
    assert as_data(wire.unpack_commands(wire.pack(batch))) == as_data(batch)


PLAIN = st.recursive(
    st.none()
    | st.booleans()
    | BIG
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
    | st.binary(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=3)
    ),
    max_leaves=12,
)


def arrays_as_tuples(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(arrays_as_tuples(item) for item in value)
    if isinstance(value, dict):
        return {key: arrays_as_tuples(item) for key, item in value.items()}
    return value


@given(PLAIN)
def test_plain_values_come_back_with_arrays_as_tuples(value: Any) -> None:
    back = wire.unpack(wire.pack(value))
    assert as_data(back) == as_data(arrays_as_tuples(value))


# --- bytes that are not what pack makes ---


@given(st.binary(max_size=200))
def test_garbage_bytes_are_a_wire_error_or_a_plain_value(data: bytes) -> None:
    try:
        value = wire.unpack(data)
    except WireError:
        return
    assert "_Entry" not in repr(as_data(value))


MARKS = [wire._BY_CLASS[cls].mark for cls in DATACLASSES]
FIELD_COUNTS = [len(dataclasses.fields(cls)) for cls in DATACLASSES]
ALL_MARKS = [entry.mark for entry in wire._BY_CLASS.values()]


def with_class_codes(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A registered class's code with as many values as it has fields, of any kind."""
    return st.integers(0, len(MARKS) - 1).flatmap(
        lambda i: st.lists(inner, min_size=FIELD_COUNTS[i], max_size=FIELD_COUNTS[i]).map(
            lambda values: {MARKS[i]: values}
        )
    )


ANY_MSGPACK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=4)
    | st.binary(max_size=4)
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=9))
    | st.integers(0, len(ALL_MARKS) - 1).map(ALL_MARKS.__getitem__),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(inner.filter(lambda v: not isinstance(v, list | dict)), inner, max_size=3)
        | with_class_codes(inner)
    ),
    max_leaves=24,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_MSGPACK)
def test_any_msgpack_naming_registered_classes_decodes_checked_or_is_a_wire_error(value: Any) -> None:
    """Class codes with field values of any shape: a fully checked object, or WireError;
    never another exception, never a class code handed on."""
    try:
        data = msgpack.packb(value, use_bin_type=True)
    except (ValueError, OverflowError, TypeError):
        return
    try:
        back = wire.unpack(data)
    except WireError:
        return
    assert "_Entry" not in repr(as_data(back))


def test_an_unknown_class_code_is_a_wire_error() -> None:
    unknown = msgpack.packb({msgpack.ExtType(1, (999).to_bytes(2, "big")): ("a", "b", 1)})
    with pytest.raises(WireError, match="unknown class code 03e7"):
        wire.unpack(unknown)
    with pytest.raises(WireError, match="unknown extension type 42"):
        wire.unpack(msgpack.packb(msgpack.ExtType(42, b"x")))


def test_a_wrong_number_of_field_values_is_a_wire_error() -> None:
    mark = wire._BY_CLASS[Line].mark
    for values in (("SKU-1", "DC-1"), ("SKU-1", "DC-1", 2, 3), "SKU-1"):
        with pytest.raises(WireError, match=r"Line: .* field values where it has 3"):
            wire.unpack(msgpack.packb({mark: values}, use_bin_type=True))


@pytest.mark.parametrize(
    ("cls", "values", "message"),
    [
        (Line, ("SKU-1", "DC-1", "2"), "Line.quantity: expected int, got str"),
        (Line, ("SKU-1", None, 2), "Line.node_id: expected str, got NoneType"),
        (Line, ("SKU-1", "DC-1", True), "Line.quantity: expected int, got bool"),
        (WrongShard, (1.5,), "WrongShard.partition: expected int, got float"),
        (Follow, (9, 1.0, 2.0, 0, ""), "Follow.state: 9 is not a PartState"),
        (Follow, (1, "soon", 2.0, 0, ""), "Follow.at: expected float, got str"),
        (
            PlaceHold,
            (1, "r", "f", (("SKU", "DC", 1),), 1.0, 2.0, "", (), "", (), (), "", -1, ""),
            "PlaceHold.lines",
        ),
        (Intent, ("op", ((1, "a step"),)), r"Intent.steps\[\]\[1\]: expected Follow \| Withdraw \| Close"),
    ],
)
def test_a_value_of_the_wrong_type_is_a_wire_error_naming_the_field(
    cls: type, values: tuple[Any, ...], message: str
) -> None:
    fields = dataclasses.fields(cls)
    values = values[: len(fields)] + tuple(f.default for f in fields[len(values) :])  # fields added later
    data = msgpack.packb({wire._BY_CLASS[cls].mark: values}, use_bin_type=True, default=wire._default)
    with pytest.raises(WireError, match=message):
        wire.unpack(data)


def test_a_class_code_in_place_of_a_plain_value_is_a_wire_error() -> None:
    mark = wire._BY_CLASS[Line].mark
    with pytest.raises(WireError, match=r"Line\.sku: expected str"):
        wire.unpack(msgpack.packb({mark: (mark, "DC-1", 1)}))
    for stray in (mark, [1, (2, mark)], {"a": [mark]}):
        with pytest.raises(WireError, match="class code where a plain value belongs"):
            wire.unpack(msgpack.packb(stray))
    with pytest.raises(WireError, match="a Timestamp where a plain value belongs"):
        wire.unpack(msgpack.packb([1, {"at": msgpack.Timestamp(1, 0)}]))
    with pytest.raises(WireError, match="class code used as a plain value"):
        wire.unpack(msgpack.packb({"a": mark, "b": 1}))


def test_a_batch_is_only_ever_a_list_of_commands() -> None:
    for not_a_batch in (Line("A", "B", 1), [commands.GetPart(1, "r"), Line("A", "B", 1)], 7, {"a": 1}):
        with pytest.raises(WireError, match="a batch is an array of commands"):
            wire.unpack_commands(wire.pack(not_a_batch))
    assert wire.unpack_commands(wire.pack([])) == []
    with pytest.raises(WireError, match="expected BatchReply, got tuple"):
        wire.unpack_reply(wire.pack([commands.GetPart(1, "r")]))


class RunsCode:
    """What pickle would call on load: os.system, here touching a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


def test_a_pickle_payload_is_a_wire_error_and_runs_nothing(tmp_path: Path) -> None:
    touched = tmp_path / "pwned"
    payload = pickle.dumps([RunsCode(touched)])
    with pytest.raises(WireError):
        wire.unpack_commands(payload)
    assert not touched.exists()


def test_a_truncated_or_overlong_frame_is_a_wire_error() -> None:
    packed = wire.pack([commands.GetPart(1, "order-1")])
    with pytest.raises(WireError):
        wire.unpack(packed[:-1])
    with pytest.raises(WireError, match="ExtraData"):
        wire.unpack(packed + b"\x00")
    with pytest.raises(WireError, match="whole 8-byte numbers"):
        wire.unpack(msgpack.packb(msgpack.ExtType(2, b"\x00" * 7)))


def test_position_rows_in_bulk_are_checked_too() -> None:
    row = ("SKU-1", "DC-1", 1, 0, 0, 2.5, 0, 0, (("web", 1),), ())
    changes = Changes("e", 2, [row] * 1000 + [("SKU-2", "DC-1", 1, 0, 0, 3, 0, 0, (), ((1.5, 2),))])
    assert wire.unpack(wire.pack(changes)) == changes  # an int as_of passes, as it went
    bad = Changes("e", 2, [row] * 1000 + [("SKU-2", "DC-1", 1, 0, 0, 3.0, 0, 0, (("web", "1"),), ())])
    with pytest.raises(WireError, match=r"Changes.rows\[\]\[8\]\[\]\[1\]: expected int, got str"):
        wire.unpack(wire.pack(bad))
    short = Changes("e", 2, [row, row[:9]])
    with pytest.raises(WireError, match=r"Changes.rows\[\]: 9 values where 10 belong"):
        wire.unpack(wire.pack(short))
    assert positions.PositionView._fields[8] == "by_channel"
