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
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from workers.store.records import build

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


def load(cls: type[T], path: Path) -> T | None:
    """The dataclass a kind or its tools wrote to ``path``; None when there is none."""
    data = read_json(path)
    return build(cls, data) if isinstance(data, Mapping) else None
