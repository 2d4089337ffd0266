"""Dataclasses from JSON objects: the one builder for every typed record colabot stores in
its database or passes between processes."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def build(cls: type[T], data: Mapping[str, Any]) -> T:
    """A dataclass from a JSON object: unknown keys are ignored, missing ones take their
    defaults, and fields typed as a dataclass (or a list of them) are built in turn."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        if spec.name in data:
            values[spec.name] = _value(hints[spec.name], data[spec.name])
    return cls(**values)


def _value(hint: Any, value: Any) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return build(hint, value)
    origin = typing.get_origin(hint)
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(hint)
        return [_value(item, v) for v in value]
    if origin in (types.UnionType, typing.Union) and value is not None:
        for option in typing.get_args(hint):
            if isinstance(option, type) and dataclasses.is_dataclass(option):
                return _value(option, value)
    return value
