"""JSON round trips for the frozen config dataclasses that cross component boundaries."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def to_json_dict(config: Any) -> dict[str, Any]:
    """Returns a JSON-serialisable dict of a (nested) dataclass instance."""
    return dataclasses.asdict(config)


def _convert(hint: Any, value: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        return None
    if dataclasses.is_dataclass(hint):
        return from_json_dict(hint, value)
    if origin is tuple:
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        return tuple(_convert(item, v) for v in value) if item else tuple(value)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    return value


def from_json_dict(cls: type[T], value: dict[str, Any]) -> T:
    """Rebuilds a frozen dataclass written by `to_json_dict` (nested ones and tuples too).

    Missing keys take the field's default; the dataclass validates the values.

    Raises:
        ValueError: on a key that is not a field, a missing required field, or an
            invalid value (as raised by the dataclass itself).
    """
    if not isinstance(value, dict):
        raise ValueError(f"{cls.__name__} expects a dict, got {value!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; known: {sorted(names)}")
    try:
        return cls(**{k: _convert(hints[k], v) for k, v in value.items()})
    except TypeError as e:
        raise ValueError(f"invalid {cls.__name__} {value!r}: {e}") from e


class JsonDataclass:
    """Mixin giving a frozen dataclass `to_json_dict` and `from_json_dict`."""

    def to_json_dict(self) -> dict[str, Any]:
        """Returns a JSON-serialisable dict (e.g. for a component's `custom_config`)."""
        return to_json_dict(self)

    @classmethod
    def from_json_dict(cls: type[T], value: dict[str, Any]) -> T:
        """Rebuilds an instance written by `to_json_dict`.

        Raises:
            ValueError: on unknown keys or invalid values.
        """
        return from_json_dict(cls, value)
