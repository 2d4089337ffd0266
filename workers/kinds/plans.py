"""The files a kind and its tools pass each other: written atomically as JSON, read back into
dataclasses by one loader.

Every kind works the same way: its ``kind.py`` writes ``request.json`` into the job's work
folder and runs ``python -m workers.kinds.<kind>.tools <command> <work folder>``; the tools
answer with files of their own (a plan, a result), which the kind reads back. Light imports
only: the bot process reads these files.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

REQUEST = "request.json"

T = TypeVar("T")


def write_json(path: Path, data: Any) -> Path:
    """Write JSON atomically (a reader never sees half a file); dataclasses become objects."""
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = dataclasses.asdict(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    return path


def read_json(path: Path) -> Any:
    """Read a JSON file; None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


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


def load(cls: type[T], path: Path) -> T | None:
    """The dataclass a kind or its tools wrote to ``path``; None when there is none."""
    data = read_json(path)
    return build(cls, data) if isinstance(data, Mapping) else None
