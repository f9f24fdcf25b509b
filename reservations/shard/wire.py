"""How a batch crosses from a gateway to a shard: commands out, a BatchReply back, one bytes
blob each (a frame of the batch port, or a Ray call's argument or result).

The bytes may come from a socket, so they are msgpack and never pickle: decoding them builds
plain values and the classes named in REGISTRY, and runs nothing the bytes choose. Each class
has a fixed code. An object travels as a map of one entry, {ext(class code): [its field values
in order]}, and is rebuilt by setting its slots once every value has been checked against the
field's declared type: no constructor, __post_init__ or __setstate__ runs. An enum travels as
{ext(class code): value} and comes back as its member of that value; an IntEnum, which msgpack
writes as a plain int, is restored by the type of the field that holds it. msgpack has one kind
of array: arrays come back as tuples, and a field declared list[...] gets a list.

Unknown codes, a wrong number of field values, a value of the wrong type or bytes that are not
msgpack raise WireError, and nothing decoded is handed on.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
import sys
import threading
import types
import typing
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any

import msgpack

from omnistock.availability.atp import ChannelLimit
from omnistock.availability.positions import LoadedBlock, PositionRow
from omnistock.reservations.domain import commands as c
from omnistock.reservations.domain import model as m
from omnistock.reservations.domain import sourcing as s
from omnistock.reservations.domain.commands import Result
from omnistock.reservations.shard import state as st
from omnistock.reservations.shard.state import Handoff, WrongShard


class WireError(ValueError):
    """Bytes that are not what pack() makes of a value this version knows: nothing was built."""


@dataclass(frozen=True, slots=True)
class BatchReply:
    results: list[Result | WrongShard]
    apply_seconds: float
    journal_seconds: float
    expired: int
    """Holds expired since the previous reply (timer included)."""
    changes: tuple[str, int] = ("", 0)
    """(epoch, version) of the shard's change feed after the batch: tells the gateway's
    view whether there is something new to fetch."""
    since: int = 0
    """Version of the change feed before the batch."""
    changed: list[PositionRow] = field(default_factory=list)
    """Positions changed from `since` to `changes`: a view at `since` takes them as they
    are, with no call of its own (one at another version fetches with changes_since)."""
    changed_loaded: list[LoadedBlock] = field(default_factory=list)
    """The same for SKUs whose loaded counts all changed, a block each (Changes.loaded)."""
    busy_seconds: float = 0.0
    """Time the shard spent on the call, on its own clock: from the batch arriving (still
    packed) to the reply made, not yet packed. The gateway's round trip less this is what
    the call spent outside the shard's own work: packing, the batch port's socket, and
    waiting for a core."""
    handoffs: list[Handoff] = field(default_factory=list)
    """Decisions whose steps for other shards the gateway should carry (ShardState._hand_out)."""


REGISTRY: tuple[tuple[int, type], ...] = (
    # reservations/domain/model.py
    (1, m.Line),
    (2, m.StockState),
    (3, m.PartState),
    (4, m.Part),
    (5, m.Decision),
    (6, m.Follow),
    (7, m.Withdraw),
    (8, m.Close),
    (9, m.Intent),
    (10, m.Claim),
    (11, m.StockSet),
    (12, m.LevelColumns),
    (13, m.LevelsSet),
    (14, m.StockAdjusted),
    (15, m.SupplyExpected),
    (16, m.HoldPlaced),
    (17, m.PartChanged),
    (18, m.HoldExtended),
    (19, m.LinesClosed),
    (20, m.UnitsReturned),
    (21, m.LineMoved),
    (22, m.HoldAborted),
    (23, m.ClaimRecorded),
    (24, m.ReservationDecided),
    (25, m.IntentCarried),
    (26, m.HoldFenced),
    (27, m.ClaimDropped),
    # reservations/domain/commands.py: commands
    (40, c.SetStock),
    (41, c.LoadLevels),
    (42, c.AdjustStock),
    (43, c.ExpectSupply),
    (44, c.PlaceHold),
    (45, c.CloseLines),
    (46, c.ReturnUnits),
    (47, c.MoveLine),
    (48, c.ReadCapacity),
    (49, c.GetPart),
    (50, c.RecordClaim),
    (51, c.DecideHold),
    (52, c.ConfirmReservation),
    (53, c.ReleaseReservation),
    (54, c.ExtendReservation),
    (55, c.DecideClose),
    (56, c.CarryStep),
    (57, c.MarkCarried),
    (58, c.GetClaim),
    (59, c.ReadPositions),
    (60, c.ReserveTogether),
    # reservations/domain/commands.py: results
    (70, c.CapacityResult),
    (71, c.StockResult),
    (72, c.LoadResult),
    (73, c.AdjustOutcome),
    (74, c.AdjustResult),
    (75, c.SupplyResult),
    (76, c.ShortLine),
    (77, c.HoldOutcome),
    (78, c.OverLimit),
    (79, c.HoldResult),
    (80, c.PartOutcome),
    (81, c.PartResult),
    (82, c.ClaimOutcome),
    (83, c.ClaimResult),
    (84, c.DecisionOutcome),
    (85, c.DecisionResult),
    (86, c.PositionsResult),
    (87, c.ReserveTogetherResult),
    # reservations/domain/sourcing.py
    (100, s.Destination),
    (101, s.Wanted),
    (102, s.NodeVerdict),
    (103, s.LineSourcing),
    (104, s.SourcingPlan),
    # reservations/shard/state.py
    (110, st.WrongShard),
    (111, st.Handoff),
    (112, st.BatchOutcome),
    (113, st.Changes),
    # availability
    (120, ChannelLimit),
    # this module
    (127, BatchReply),
    # plain values msgpack has no type for
    (200, frozenset),
)
"""Every class that may cross, with its code. A code is never reused for another class: bytes
packed by another version then fail to decode instead of decoding as something else."""

COMMANDS: frozenset[type] = frozenset(typing.get_args(c.BatchCommand))

_EXT_CLASS = 1
"""Data: the class code, 2 bytes big-endian."""
_EXT_INTS = 2
"""array('q'), little-endian."""
_EXT_FLOATS = 3
"""array('d'), little-endian."""
_EXT_BIG_INT = 4
"""An int beyond msgpack's 64 bits, signed big-endian."""
_ARRAYS = {"q": _EXT_INTS, "d": _EXT_FLOATS}
_SWAP = sys.byteorder != "little"

Check = Callable[[Any], Any]
"""Checks one decoded value against a declared type: the value as the field holds it (an IntEnum
for an int, a list for a tuple where a list is declared), or WireError."""


class _Entry:
    """A registered class: its mark on the wire, how to write an object and how to rebuild one."""

    __slots__ = ("build", "cls", "code", "encode", "mark")

    def __init__(self, code: int, cls: type) -> None:
        self.code = code
        self.cls = cls
        self.mark = msgpack.ExtType(_EXT_CLASS, code.to_bytes(2, "big"))
        self.encode: Callable[[Any], Any] = _unset
        self.build: Check = _unset

    def __repr__(self) -> str:
        return f"<wire code {self.code}: {self.cls.__name__}>"


def _unset(value: Any) -> Any:
    raise WireError("the wire registry is not complete")


def _brief(value: Any) -> str:
    """A decoded value in an error message: never more than a few dozen characters of it."""
    if type(value) is int and value.bit_length() > 64:
        return f"an int of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _fail(where: str, expected: str, value: Any) -> WireError:
    return WireError(f"{where}: expected {expected}, got {type(value).__name__}")


# --- checks by declared type ---


def _exact(tp: type, where: str) -> Check:
    def check(value: Any) -> Any:
        if type(value) is not tp:
            raise _fail(where, tp.__name__, value)
        return value

    return check


def _number(where: str) -> Check:
    def check(value: Any) -> Any:
        if type(value) is not float and type(value) is not int:
            raise _fail(where, "float", value)
        return value

    return check


def _none(where: str) -> Check:
    def check(value: Any) -> Any:
        if value is not None:
            raise _fail(where, "None", value)
        return value

    return check


def _int_enum(cls: type[enum.Enum], where: str) -> Check:
    members = cls._value2member_map_

    def check(value: Any) -> Any:
        if type(value) is not int:
            raise _fail(where, cls.__name__, value)
        try:
            return members[value]
        except KeyError:
            raise WireError(f"{where}: {_brief(value)} is not a {cls.__name__}") from None

    return check


def _one_of(classes: tuple[type, ...], where: str) -> Check:
    allowed = frozenset(classes)
    names = " | ".join(cls.__name__ for cls in classes)

    def check(value: Any) -> Any:
        if type(value) not in allowed:
            raise _fail(where, names, value)
        return value

    return check


def _optional(inner: Check) -> Check:
    def check(value: Any) -> Any:
        return None if value is None else inner(value)

    return check


_FEW = 8
"""Up to this many items, checking each costs less than _all_valid's passes over them all."""


def _items(
    inner: Check, converts: bool, make: type, where: str, valid: Callable[[Any], bool] | None = None
) -> Check:
    """tuple[X, ...] or list[X]: an array of X; `make` is what the field holds. `valid`: says
    at C speed that every item is an X as it is (_all_valid), so that the view feed's hundreds
    of thousands of rows are not checked one Python call each; when it says no, each item is
    checked on its own (an int where a float belongs passes; anything else raises)."""

    def check(value: Any) -> Any:
        if type(value) is not tuple and type(value) is not list:
            raise _fail(where, make.__name__, value)
        if not value:
            return value if type(value) is make else make()
        if valid is not None and len(value) > _FEW and valid(value):
            return value if type(value) is make else make(value)
        if converts:
            return make(map(inner, value))
        for item in value:
            inner(item)
        return value if type(value) is make else make(value)

    return check


def _all_valid(tp: Any) -> Callable[[Any], bool] | None:
    """A test that every value of a sequence is a `tp` as it is, with no Python call per value
    (columns of tuples are compared whole), or None when `tp` has no such test."""
    is_not = operator.is_not
    plain = _plain_type(tp)
    if plain is not None:
        return lambda values: not any(map(is_not, map(type, values), repeat(plain)))
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is not tuple or not args or args == ((),):
        return None
    if len(args) == 2 and args[1] is Ellipsis:
        items = _all_valid(args[0])
        if items is None:
            return None
        found = items

        def arrays_of(values: Any) -> bool:
            if any(map(is_not, map(type, values), repeat(tuple))):
                return False
            return found(tuple(chain.from_iterable(values)))

        return arrays_of
    outer = tuple(_outer_type(arg) for arg in args)
    deep = [(i, _all_valid(arg)) for i, arg in enumerate(args) if _plain_type(arg) is None]
    if None in outer or any(test is None for _, test in deep):
        return None
    inside = [(operator.itemgetter(i), typing.cast(Callable[[Any], bool], test)) for i, test in deep]
    equal = operator.eq

    def rows_of(values: Any) -> bool:
        if not values:
            return True
        if any(map(is_not, map(type, values), repeat(tuple))):
            return False
        if not all(map(equal, map(tuple, map(map, repeat(type), values)), repeat(outer))):
            return False
        return all(test(tuple(map(pick, values))) for pick, test in inside)

    return rows_of


def _fixed(
    inners: list[Check],
    converts: bool,
    where: str,
    make: Callable[[Any], Any] = tuple,
    outer: tuple[type | None, ...] = (),
    plain: tuple[bool, ...] = (),
) -> Check:
    """tuple[A, B, ...]: exactly these, in order. `outer`: the type each value has on the wire
    when it is one, so the usual case is checked in one step and only the values that are
    containers one by one (`plain[i]`: nothing more to check of value i)."""
    count = len(inners)
    expected = outer if outer and None not in outer else None
    deeper = tuple((i, inners[i]) for i in range(count) if not plain[i]) if expected is not None else ()

    def check(value: Any) -> Any:
        if type(value) is not tuple and type(value) is not list:
            raise _fail(where, "tuple", value)
        if len(value) != count:
            raise WireError(f"{where}: {len(value)} values where {count} belong")
        if expected is not None and tuple(map(type, value)) == expected:
            if converts:
                value = list(value)
                for i, inner in deeper:
                    value[i] = inner(value[i])
                return make(value)
            for i, inner in deeper:
                inner(value[i])
            return value if make is tuple else make(value)
        if converts:
            return make([inner(item) for inner, item in zip(inners, value, strict=True)])
        for inner, item in zip(inners, value, strict=True):
            inner(item)
        return value if type(value) is tuple and make is tuple else make(value)

    return check


def _mapping(keys: Check, values: Check, where: str) -> Check:
    def check(value: Any) -> Any:
        if type(value) is not dict:
            raise _fail(where, "dict", value)
        return {keys(k): values(v) for k, v in value.items()}

    return check


def _set_of(inner: Check, where: str) -> Check:
    def check(value: Any) -> Any:
        if type(value) is not frozenset:
            raise _fail(where, "frozenset", value)
        for item in value:
            inner(item)
        return value

    return check


def _typed_array(typecode: str, where: str) -> Check:
    def check(value: Any) -> Any:
        if type(value) is not array or value.typecode != typecode:
            raise _fail(where, f"array({typecode!r})", value)
        return value

    return check


_SCALARS: dict[Any, type] = {str: str, int: int, bool: bool, bytes: bytes}


def _check_for(tp: Any, where: str) -> tuple[Check, bool]:
    """The check of values declared `tp`, and whether it may give back another object than
    it was given (then containers of it rebuild themselves)."""
    if tp in _SCALARS:
        return _exact(_SCALARS[tp], where), False
    if tp is float:
        return _number(where), False
    if tp is type(None) or tp is None:
        return _none(where), False
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if tp not in _BY_CLASS:
            raise TypeError(f"{where}: enum {tp.__name__} is not in the wire registry")
        if issubclass(tp, int):  # msgpack writes it as a plain int
            return _int_enum(tp, where), True
        return _exact(tp, where), False
    if isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields"):  # a NamedTuple
        hints = typing.get_type_hints(tp)
        inners = [_check_for(hints[name], f"{where}.{name}")[0] for name in tp._fields]
        outer = tuple(_outer_type(hints[name]) for name in tp._fields)
        plain = tuple(_plain_type(hints[name]) is not None for name in tp._fields)
        named: type[tuple[Any, ...]] = tp
        rebuild = lambda values: tuple.__new__(named, values)  # noqa: E731
        return _fixed(inners, True, where, rebuild, outer, plain), True
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if tp not in _BY_CLASS:
            raise TypeError(f"{where}: {tp.__name__} is not in the wire registry")
        return _exact(tp, where), False
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        members = [arg for arg in args if arg is not type(None)]
        if len(members) < len(args) and len(members) == 1:
            inner, converts = _check_for(members[0], where)
            return _optional(inner), converts
        classes_only = all(
            isinstance(arg, type)
            and arg in _BY_CLASS
            and not (issubclass(arg, enum.Enum) and issubclass(arg, int))
            for arg in members
        )
        if not classes_only:
            raise TypeError(f"{where}: no wire form for a union of {tp!r}")
        check = _one_of(tuple(members), where)
        return (_optional(check), False) if len(members) < len(args) else (check, False)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            inner, converts = _check_for(args[0], f"{where}[]")
            valid = None if converts else _all_valid(args[0])
            return _items(inner, converts, tuple, where, valid), converts
        if args == ((),):
            return _fixed([], False, where), False
        checks = [_check_for(arg, f"{where}[{i}]") for i, arg in enumerate(args)]
        converts = any(conv for _, conv in checks)
        outer = tuple(_outer_type(arg) for arg in args)
        plain = tuple(_plain_type(arg) is not None for arg in args)
        return _fixed([check for check, _ in checks], converts, where, tuple, outer, plain), converts
    if origin is list:
        inner, converts = _check_for(args[0], f"{where}[]")
        return _items(inner, converts, list, where, None if converts else _all_valid(args[0])), True
    if origin is dict:
        keys, _ = _check_for(args[0], f"{where} key")
        values, _ = _check_for(args[1], f"{where} value")
        return _mapping(keys, values, where), True
    if origin is frozenset:
        inner, _ = _check_for(args[0], f"{where}[]")
        return _set_of(inner, where), False
    if tp is _Ints or tp is _Floats:
        return _typed_array("q" if tp is _Ints else "d", where), False
    raise TypeError(f"{where}: no wire form for the declared type {tp!r}")


# --- the registry ---


class _Ints:
    """array[int] in a declared type: array.array takes no [] before Python 3.12."""


class _Floats:
    """array[float] in a declared type."""


class _ArrayHint:
    def __class_getitem__(cls, item: Any) -> Any:
        return {int: _Ints, float: _Floats}[item]


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, localns={"array": _ArrayHint})


def _plain_type(tp: Any) -> type | None:
    """The one type a value declared `tp` has (float: most often), or None."""
    if tp in _SCALARS or tp is float:
        return tp if isinstance(tp, type) else None
    if isinstance(tp, type) and tp in _BY_CLASS and not (issubclass(tp, enum.Enum) and issubclass(tp, int)):
        return tp
    return None


def _outer_type(tp: Any) -> type | None:
    """The type a value declared `tp` has as decoded, before its items are checked, or None
    when it may have several."""
    plain = _plain_type(tp)
    if plain is not None:
        return plain
    origin = typing.get_origin(tp)
    if origin in (tuple, list) or (isinstance(tp, type) and issubclass(tp, tuple)):
        return tuple  # every msgpack array decodes as a tuple
    if origin is dict or origin is frozenset:
        return origin
    if tp is _Ints or tp is _Floats:
        return array
    return None


def _builder(cls: type, names: tuple[str, ...], hints: dict[str, Any]) -> Check:
    """The function that rebuilds a `cls` from its field values, or raises WireError.

    Written out as source for each class, as dataclasses writes each __init__: a loop over the
    fields costs twice as much, and replies rebuild thousands of objects a second; the usual
    values (a str, a float, an empty tuple, None) are checked inline, without a call. The
    source is made of field positions only (v0, c0, s0...), never of names or of anything
    decoded; what it calls is bound in its namespace: the checks, the slots' setters, the types.
    """
    count = len(names)
    where = cls.__name__
    checks = [_check_for(hints[name], f"{where}.{name}") for name in names]
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls, "EMPTY": ()}

    def count_error(values: Any) -> WireError:
        got = len(values) if type(values) is tuple else type(values).__name__
        return WireError(f"{where}: {got} field values where it has {count}")

    def field_error(index: int, value: Any) -> WireError:
        try:
            checks[index][0](value)
        except WireError as error:
            return error
        return WireError(f"{where}.{names[index]}: {type(value).__name__} is not what it holds")

    namespace["count_error"], namespace["field_error"] = count_error, field_error
    body = [
        "def build(values):",
        f"    if type(values) is not tuple or len(values) != {count}:",
        "        raise count_error(values)",
    ]
    if count:
        body.append(f"    {', '.join(f'v{i}' for i in range(count))}, = values")
    for i, name in enumerate(names):
        body += _field_source(i, hints[name], *checks[i], namespace)
    body.append("    instance = new(cls)")
    for i, name in enumerate(names):
        namespace[f"s{i}"] = vars(cls)[name].__set__
        body.append(f"    s{i}(instance, v{i})")
    body.append("    return instance")
    exec("\n".join(body), namespace)
    build: Check = namespace["build"]
    return build


def _field_source(i: int, hint: Any, check: Check, converts: bool, namespace: dict[str, Any]) -> list[str]:
    """The lines of _builder's source that check (and maybe convert) field value v{i}."""
    value, fail = f"v{i}", f"        raise field_error({i}, v{i})"
    plain = _plain_type(hint)
    if plain is float:  # an int stands for a float, as it did in the object packed
        return [f"    if type({value}) is not float and type({value}) is not int:", fail]
    if plain is not None:
        namespace[f"t{i}"] = plain
        return [f"    if type({value}) is not t{i}:", fail]
    if isinstance(hint, type) and issubclass(hint, enum.Enum) and issubclass(hint, int):
        namespace[f"m{i}"] = hint._value2member_map_
        return [
            f"    e{i} = m{i}.get({value}) if type({value}) is int else None",
            f"    if e{i} is None:",
            fail,
            f"    {value} = e{i}",
        ]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    namespace[f"c{i}"] = check
    if (origin is typing.Union or origin is types.UnionType) and type(None) in args:
        members = [arg for arg in args if arg is not type(None)]
        inner = _plain_type(members[0]) if len(members) == 1 else None
        if inner is not None and inner is not float:
            namespace[f"t{i}"] = inner
            return [f"    if {value} is not None and type({value}) is not t{i}:", fail]
        return [f"    if {value} is not None:", f"        {value} = c{i}({value})"]
    if origin is tuple and not converts:
        return [f"    if {value} is not EMPTY:", f"        {value} = c{i}({value})"]
    return [f"    {value} = c{i}({value})"]


def check_rebuildable(cls: type) -> tuple[str, ...]:
    """The field names of a class the wire can rebuild from its field values in order, or
    TypeError: it must be a slots dataclass whose fields are all set by __init__, with no
    __post_init__ (a rebuild skips both)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass")
    fields = dataclasses.fields(cls)
    names = tuple(f.name for f in fields)
    if getattr(cls, "__slots__", None) != names or not all(f.init for f in fields):
        raise TypeError(f"{cls.__name__} cannot be rebuilt from its fields in order")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__ that a rebuild would skip")
    return names


def _dataclass_entry(entry: _Entry) -> None:
    cls = entry.cls
    names = check_rebuildable(cls)
    count = len(names)
    entry.build = _builder(cls, names, _hints(cls))
    mark = entry.mark
    if count >= 2:
        values_of = operator.attrgetter(*names)
        entry.encode = lambda obj: {mark: values_of(obj)}
    elif count == 1:
        only = names[0]
        entry.encode = lambda obj: {mark: (getattr(obj, only),)}
    else:
        entry.encode = lambda obj: {mark: ()}


def _enum_entry(entry: _Entry) -> None:
    cls = typing.cast(type[enum.Enum], entry.cls)
    members = cls._value2member_map_
    mark = entry.mark

    def build(value: Any) -> Any:
        try:
            return members[value]
        except (KeyError, TypeError):
            raise WireError(f"{_brief(value)} is not a {cls.__name__}") from None

    entry.encode = lambda obj: {mark: obj.value}
    entry.build = build


def _frozenset_entry(entry: _Entry) -> None:
    mark = entry.mark

    def build(values: Any) -> Any:
        if type(values) is not tuple:
            raise _fail("frozenset", "an array", values)
        try:
            return frozenset(values)
        except TypeError as error:
            raise WireError(f"frozenset: {error}") from None

    entry.encode = lambda obj: {mark: tuple(obj)}
    entry.build = build


_BY_CLASS: dict[type, _Entry] = {}
_BY_TAG: dict[bytes, _Entry] = {}


def _register() -> None:
    entries = [_Entry(code, cls) for code, cls in REGISTRY]
    for entry in entries:
        if entry.cls in _BY_CLASS or entry.mark.data in _BY_TAG:
            raise TypeError(f"{entry.cls.__name__} or code {entry.code} is registered twice")
        _BY_CLASS[entry.cls] = entry
        _BY_TAG[entry.mark.data] = entry
    for entry in entries:  # every class is known before any field's type is looked at
        if entry.cls is frozenset:
            _frozenset_entry(entry)
        elif issubclass(entry.cls, enum.Enum):
            _enum_entry(entry)
        elif dataclasses.is_dataclass(entry.cls):
            _dataclass_entry(entry)
        else:
            raise TypeError(f"{entry.cls.__name__} has no wire form")


_register()


# --- pack and unpack ---


def _default(value: Any) -> Any:
    """What msgpack writes for a value it has no type for."""
    entry = _BY_CLASS.get(type(value))
    if entry is not None:
        return entry.encode(value)
    if type(value) is array and value.typecode in _ARRAYS:
        if _SWAP:
            value = array(value.typecode, value)
            value.byteswap()
        return msgpack.ExtType(_ARRAYS[value.typecode], value.tobytes())
    if type(value) is int:  # beyond 64 bits
        return msgpack.ExtType(_EXT_BIG_INT, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))
    raise TypeError(f"{type(value).__qualname__} cannot cross the wire: it is not in wire.REGISTRY")


def _ext(code: int, data: bytes) -> Any:
    if code == _EXT_CLASS:
        entry = _BY_TAG.get(data)
        if entry is None:
            raise WireError(f"unknown class code {data.hex()}")
        return entry
    if code in (_EXT_INTS, _EXT_FLOATS):
        numbers = array("q" if code == _EXT_INTS else "d")
        if len(data) % numbers.itemsize:
            raise WireError(f"an array of {len(data)} bytes is not whole {numbers.itemsize}-byte numbers")
        numbers.frombytes(data)
        if _SWAP:
            numbers.byteswap()
        return numbers
    if code == _EXT_BIG_INT:
        return int.from_bytes(data, "big", signed=True)
    raise WireError(f"unknown extension type {code}")


def _object(pairs: list[tuple[Any, Any]]) -> Any:
    """A registered object from its one-entry map, or a plain dict."""
    if len(pairs) == 1:
        key, value = pairs[0]
        if type(key) is _Entry:
            return key.build(value)
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        raise WireError("a map with a repeated key")
    if any(type(key) is _Entry for key in mapping) or any(type(v) is _Entry for v in mapping.values()):
        raise WireError("a class code used as a plain value")
    return mapping


_packers = threading.local()
"""A packer per thread: the batch port packs replies on several threads at once."""


def pack(value: Any) -> bytes:
    """Commands, a BatchReply, Changes... as bytes: plain values and registered classes only."""
    packer: msgpack.Packer | None = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer(default=_default, use_bin_type=True, datetime=False)
    try:
        return packer.pack(value)
    except BaseException:
        packer.reset()  # a failed pack may leave part of the value in the buffer
        raise


def _decode(data: bytes) -> Any:
    try:
        return msgpack.unpackb(
            data,
            use_list=False,
            raw=False,
            strict_map_key=False,
            ext_hook=_ext,
            object_pairs_hook=_object,
        )
    except WireError:
        raise
    except Exception as error:  # msgpack's own errors, and a hook's TypeError or ValueError
        raise WireError(f"not a packed value: {type(error).__name__}: {error}") from None


_PLAIN: frozenset[type] = frozenset({type(None), bool, int, float, str, bytes, array})


def _only_plain_values(value: Any) -> None:
    """WireError for anything but plain values and registered objects outside declared fields:
    a class code alone, or what msgpack makes of its own extensions (a Timestamp). A registered
    object's fields were checked when it was built; only the containers around it are walked."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is tuple or kind is frozenset:
            stack.extend(item)
        elif kind is dict:
            stack.extend(item)
            stack.extend(item.values())
        elif kind is _Entry:
            raise WireError("a class code where a plain value belongs")
        elif kind not in _PLAIN and kind not in _BY_CLASS:
            raise WireError(f"a {kind.__name__} where a plain value belongs")


def unpack(data: bytes) -> Any:
    """What pack() was given, arrays as tuples outside declared fields. WireError when the
    bytes are anything else."""
    value = _decode(data)
    _only_plain_values(value)
    return value


def unpack_commands(data: bytes) -> list[c.BatchCommand]:
    """A packed batch: a list of commands, or WireError (and no command is handed on)."""
    batch = _decode(data)
    if type(batch) is not tuple or not all(type(command) in COMMANDS for command in batch):
        raise WireError("a batch is an array of commands")
    return list(batch)


def unpack_reply(data: bytes) -> BatchReply:
    reply = _decode(data)
    if type(reply) is not BatchReply:
        raise _fail("reply", "BatchReply", reply)
    return reply
