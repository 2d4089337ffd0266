"""File names: the one way colabot makes a name from outside safe as a local file, and the
one way it makes names unique within a folder."""

from __future__ import annotations

import re

MAX_NAME_BYTES = 255
# Letters and digits of any script, and . _ - and space; everything else (path separators,
# control characters, quotes, shell punctuation) becomes "_".
_UNSAFE = re.compile(r"[^\w. -]+")


def safe_name(name: str | None, default: str = "file") -> str:
    """A name that is one harmless file in its folder.

    Only the last part of a path is kept (``../../etc/passwd`` is ``passwd``; ``\\`` counts
    as a separator too), unsafe characters become ``_``, leading and trailing dots and
    spaces go, and a long name is cut to 255 bytes with its suffix kept. ``default`` stands
    in for a name with nothing left.
    """
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).strip(" .")
    while len(cleaned.encode()) > MAX_NAME_BYTES:
        stem, dot, suffix = cleaned.rpartition(".")
        keep_suffix = bool(dot and stem and 0 < len(suffix) < 16)
        cleaned = f"{stem[:-1]}.{suffix}" if keep_suffix else cleaned[:-1]
    return cleaned or default


def unique_name(name: str, used: set[str]) -> str:
    """``name``, or ``stem-2.ext``, ``stem-3.ext``... when a name that differs only in case is
    already in ``used``; the chosen name is added to ``used`` (as its casefold)."""
    candidate, counter = name, 1
    stem, dot, suffix = name.partition(".")
    while candidate.casefold() in used:
        counter += 1
        candidate = f"{stem}-{counter}{dot}{suffix}"
    used.add(candidate.casefold())
    return candidate
