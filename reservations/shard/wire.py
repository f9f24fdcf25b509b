"""How a batch crosses the Ray boundary: commands out, results back, one bytes blob each.

Ray pickles arguments and results with cloudpickle, which runs a Python hook for every
object. A batch is plain data (frozen slots dataclasses, enums, tuples), so the standard
C pickler does the same job in about half the time. Each object travels as its field
values and is rebuilt by setting its slots directly: several times faster than the
__getstate__/__setstate__ pair that slots dataclasses get (it calls dataclasses.fields()
for every object), or than a frozen dataclass's __init__.
"""

from __future__ import annotations

import dataclasses
import pickle
import types
from collections.abc import Callable
from typing import Any

from omnistock.reservations.domain import commands, model, sourcing
from omnistock.reservations.shard import state as shard

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


def pack(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(data: bytes) -> Any:
    return pickle.loads(data)  # only ever from our own shard actors


by_fields_in(commands, model, shard, sourcing)
