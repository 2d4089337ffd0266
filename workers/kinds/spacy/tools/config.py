"""spaCy training configs: parsing them, checking overrides and corpus references against
them, and writing the config that resumes from a saved model.

confection is imported only when a config is read.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workers.kinds.spacy.tools.errors import ToolError


def parse_override_value(text: str) -> Any:
    """An override's value as spaCy reads it: JSON when it parses, else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def describe_config_error(exc: Exception) -> str:
    """A confection error in one line."""
    errors = getattr(exc, "errors", None) or []
    details = [
        f"{' -> '.join(str(p) for p in e.get('loc', []))}: {e.get('msg', '')}".strip(": ")
        for e in errors
        if isinstance(e, dict)
    ]
    if not details:
        desc = str(getattr(exc, "desc", "") or exc)
        details = [
            line.strip()
            for line in desc.splitlines()
            if line.strip() and not line.startswith(("Make sure", "file:", "'"))
        ]
    text = "; ".join(details[:3]) or type(exc).__name__
    return text if len(text) <= 300 else text[:299] + "…"


def unknown_override(config: Mapping[str, Any], key: str) -> str | None:
    """Why a dotted override key names no setting of the config, or None when it does."""
    parts = key.split(".")
    node: Any = config
    for depth, part in enumerate(parts):
        if not isinstance(node, Mapping) or part not in node:
            section = ".".join(parts[:depth]) or None
            options = list(node) if isinstance(node, Mapping) else []
            close = difflib.get_close_matches(part, options, n=1)
            hint = f" (did you mean {'.'.join([*parts[:depth], close[0]])}?)" if close else ""
            where = f"[{section}] has no setting {part!r}" if section else f"no [{part}] section"
            return f"unknown config key {key}: {where}{hint}"
        node = node[part]
    return None


def load_config(
    path: Path, overrides: Mapping[str, Any] | None = None, *, interpolate: bool
) -> Any:
    """A confection Config from a file; ToolError in words when it does not parse."""
    from confection import Config

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ToolError(f"the config {path.name} is not a text file") from None
    try:
        return Config().from_str(text, overrides=dict(overrides or {}), interpolate=interpolate)
    except Exception as exc:
        reason = describe_config_error(exc)
        raise ToolError(f"the config {path.name} does not parse: {reason}") from None


def section_exists(config: Mapping[str, Any], dotted: str) -> bool:
    """Whether ``corpora.train`` names a section of the config."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return isinstance(node, Mapping)


def check_config(
    path: Path, overrides: list[tuple[str, str]], train: Path, dev: Path
) -> Mapping[str, Any]:
    """Parse the config, check every override key and the corpus references; return it
    interpolated with the overrides."""
    raw = load_config(path, interpolate=False)
    for key, _value in overrides:
        problem = unknown_override(raw, key)
        if problem:
            raise ToolError(problem)
    if unknown_override(raw, "paths.train") or unknown_override(raw, "paths.dev"):
        raise ToolError(
            f"the config {path.name} has no [paths] train and dev settings, "
            "which colabot sets to the data"
        )
    values = {key: parse_override_value(value) for key, value in overrides}
    values.update({"paths.train": str(train), "paths.dev": str(dev)})
    config = load_config(path, values, interpolate=True)
    training = config.get("training", {})
    for name in ("train_corpus", "dev_corpus"):
        reference = training.get(name)
        if isinstance(reference, str) and not section_exists(config, reference):
            raise ToolError(
                f"the config's training.{name} refers to [{reference}], which it does not have"
            )
    return config  # type: ignore[no-any-return]


def write_resume_config(model: Path, dest: Path) -> Path:
    """A config that trains on from ``model``'s weights: every component is sourced from it.

    The base is the config the model was trained with (overrides included). The optimizer
    state and the step counter start again; spaCy keeps neither.
    """
    config = load_config(model / "config.cfg", interpolate=False)
    pipeline = list(config["nlp"]["pipeline"])
    config["components"] = {name: {"source": str(model), "component": name} for name in pipeline}
    vectors = config.get("paths", {}).get("vectors")
    if vectors not in (None, "null", ""):
        config["paths"]["vectors"] = str(model)
    config.to_disk(dest)
    return dest
