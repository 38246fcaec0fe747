"""Strict types for the config values a logs file sets (`model`, `gate`, `features`).

YAML reads `"false"` as a string and Python's `bool("false")` is True, so a
quoted boolean would silently mean its opposite. Every value is checked against
the type its dataclass field declares before any config is built: a bool must be
a YAML boolean, a number a number, a string a string, and nested configs
(`model.dcn`, `model.scann`, `model.recommend`) are checked field by field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any


def _describe(kind) -> str:
    return getattr(kind, "__name__", None) or str(kind).replace("typing.", "")


def _fits(value: Any, kind) -> bool:
    origin = typing.get_origin(kind)
    if kind is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, k) for k in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        if len(args) != len(value):
            return False
        return all(_fits(v, a) for v, a in zip(value, args, strict=True))
    if dataclasses.is_dataclass(kind):
        return isinstance(value, dict)
    return True


def check(values: dict, cls: type, key: str, fail: Callable[[str, str], Exception]) -> None:
    """Checks every value of a mapping against the field types of dataclass `cls`.

    Args:
        values: The mapping a logs file gives for `cls` (unknown keys were
            already refused).
        cls: The config dataclass (e.g. `ModelConfig`).
        key: The mapping's key in the file (e.g. "model").
        fail: Builds the error for (key path, message); the logs file's error,
            which names the file.

    Raises:
        What `fail` builds: naming the key path and the expected type.
    """
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        kind = hints.get(name)
        if kind is None:
            continue
        path = f"{key}.{name}"
        if not _fits(value, kind):
            raise fail(path, f"expected {_describe(kind)}, got {value!r} ({type(value).__name__})")
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            known = {f.name for f in dataclasses.fields(kind)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise fail(path, f"unknown key(s) {unknown}; known: {sorted(known)}")
            check(value, kind, path, fail)
