"""What the selftest kind asks its tool for: ``request.json`` in the job's work folder."""

from __future__ import annotations

from dataclasses import dataclass, field

FLOOD_LINE = b"flood " + b"x" * 93 + b"\n"
"""The line a flood writes, over and over (100 bytes with its line end)."""


@dataclass
class Request:
    """One selftest run: its mode, length, and the faults it was told to show."""

    mode: str
    out: str
    steps: int = 5
    delay: float = 0.2
    input: str | None = None
    models: list[str] = field(default_factory=list)
    fail: bool = False
    flood_mb: float = 0.0
    resume_from: str | None = None
    stop_delay: float = 0.0
    stop_file: str | None = None
    """Training ends early, keeping its model, once this file appears."""
