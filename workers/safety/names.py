"""Names: the file-name limit, the one way a name from outside becomes a safe local file
name, the one way names are made unique in a folder, and the one sanitiser for step names
and labels that end up in a script, a cluster's job name, a log line or a record."""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_BYTES = 255
"""The longest file name (one path part) Linux file systems accept, in bytes."""

# Letters and digits of any script, and . _ - and space; everything else (path separators,
# control characters, quotes, shell punctuation) becomes "_".
_UNSAFE = re.compile(r"[^\w. -]+")
# One word for a cluster's job name: what squeue and scontrol print unquoted.
_NOT_WORD = re.compile(r"[^\w.-]+", re.ASCII)


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


# Bidirectional embeddings, overrides and isolates: they make text read in another order
# than it runs (U+202E shows "gpj.exe" as "exe.jpg").
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def is_control(char: str) -> bool:
    """Whether ``char`` breaks a line or hides text: C0 and C1 controls, line and paragraph
    separators, and bidirectional controls. (Zero-width joiners, which some scripts need in
    names, are kept.)"""
    return char in _BIDI or unicodedata.category(char) in ("Cc", "Zl", "Zp")


def has_control(text: str) -> bool:
    """Whether ``text`` holds any character :func:`is_control` refuses."""
    return any(is_control(c) for c in text)


def shown(text: str) -> str:
    """``text`` as one printable line: every control character written as an escape
    (``\\x0a``, ``\\u202e``). The one sanitiser for step names, labels and anything from
    an input that is shown, logged, recorded or written into a script's comment."""
    return "".join(
        (f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}") if is_control(c) else c
        for c in text
    )


def label(text: str, limit: int = 200) -> str:
    """A step name or label safe for one line of a log, a record or a script: control
    characters escaped (:func:`shown`) and at most ``limit`` characters."""
    line = shown(text)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def word(text: str) -> str:
    """``text`` as one ASCII word (letters, digits, ``_ . -``): for names a cluster prints
    unquoted, such as a Slurm job name."""
    return _NOT_WORD.sub("-", text).strip("-") or "step"


def is_plain_name(name: str) -> bool:
    """A single file name: no folders, no ``..``, no control characters, not too long."""
    return (
        bool(name)
        and name not in (".", "..")
        and "/" not in name
        and "\\" not in name
        and not has_control(name)
        and len(name.encode()) <= MAX_NAME_BYTES
    )
