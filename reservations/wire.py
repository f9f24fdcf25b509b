"""How a batch crosses the Ray boundary: commands out, results back, one bytes blob each.

Ray pickles arguments and results with cloudpickle, which runs a Python hook for every
object. A batch is plain data (frozen slots dataclasses, enums, tuples), so the standard
C pickler does the same job in about half the time, and rebuilding each object from its
fields is about three times faster than the __getstate__/__setstate__ pair that slots
dataclasses get (it calls dataclasses.fields() for every object).
"""

from __future__ import annotations

import dataclasses
import pickle
import types
from typing import Any

from reservations import commands, model, shard, sourcing


def _rebuild_from_fields(self: Any) -> tuple[type, tuple[Any, ...]]:
    return type(self), tuple(getattr(self, name) for name in self.__slots__)


def by_fields(*classes: type) -> None:
    """Pickle these slots dataclasses as their constructor and field values."""
    for cls in classes:
        fields = dataclasses.fields(cls)
        names = tuple(f.name for f in fields)
        if getattr(cls, "__slots__", None) != names or not all(f.init for f in fields):
            raise TypeError(f"{cls.__name__} cannot be rebuilt from its fields in order")
        cls.__reduce__ = _rebuild_from_fields  # type: ignore[method-assign,assignment]


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
