"""How a batch crosses from a gateway to a shard: commands out, a BatchReply back, one bytes
blob each (a frame of the batch port, or a Ray call's argument).

A batch is plain data (frozen slots dataclasses, enums, tuples), so the standard C pickler
packs it, in about half the time of cloudpickle, which runs a Python hook for every object.
Each object travels as its field values and is rebuilt by setting its slots directly:
several times faster than the __getstate__/__setstate__ pair that slots dataclasses get
(it calls dataclasses.fields() for every object), or than a frozen dataclass's __init__.
"""

from __future__ import annotations

import dataclasses
import pickle
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omnistock.availability.positions import LoadedBlock, PositionRow
from omnistock.reservations.domain import commands, model, sourcing
from omnistock.reservations.domain.commands import Result
from omnistock.reservations.shard import state as shard
from omnistock.reservations.shard.state import Handoff, WrongShard

_SETTERS: dict[type, tuple[Callable[[Any, Any], None], ...]] = {}


def _rebuild(cls: type, values: tuple[Any, ...]) -> Any:
    """The object with these field values, set through its slots: a frozen dataclass's
    __init__ sets each field with object.__setattr__, about 5x slower for 10 fields."""
    instance: Any = object.__new__(cls)
    for setter, value in zip(_SETTERS[cls], values, strict=True):
        setter(instance, value)
    return instance


def _reduce_to_fields(self: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    return _rebuild, (type(self), tuple(getattr(self, name) for name in self.__slots__))


def by_fields(*classes: type) -> None:
    """Pickle these slots dataclasses as their class and field values."""
    for cls in classes:
        fields = dataclasses.fields(cls)
        names = tuple(f.name for f in fields)
        if getattr(cls, "__slots__", None) != names or not all(f.init for f in fields):
            raise TypeError(f"{cls.__name__} cannot be rebuilt from its fields in order")
        if hasattr(cls, "__post_init__"):
            raise TypeError(f"{cls.__name__} has a __post_init__ that a rebuild would skip")
        _SETTERS[cls] = tuple(vars(cls)[name].__set__ for name in names)
        cls.__reduce__ = _reduce_to_fields  # type: ignore[method-assign,assignment]


def by_fields_in(*modules: types.ModuleType) -> None:
    """by_fields for every slots dataclass defined in these modules."""
    for module in modules:
        by_fields(
            *(
                value
                for value in vars(module).values()
                if isinstance(value, type)
                and value.__module__ == module.__name__
                and dataclasses.is_dataclass(value)
                and hasattr(value, "__slots__")
            )
        )


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


def pack(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(data: bytes) -> Any:
    return pickle.loads(data)  # only ever from our own shard actors


by_fields_in(commands, model, shard, sourcing)
by_fields(BatchReply)
