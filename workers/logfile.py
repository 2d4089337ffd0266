"""Reading the end of a job's log without loading the whole file."""

from __future__ import annotations

from pathlib import Path

BLOCK = 64 * 1024


def tail_lines(path: Path, count: int, *, max_bytes: int = 4 * 1024 * 1024) -> list[str]:
    """The last ``count`` lines of a text file (``\\r`` ends a line too), reading from the end."""
    if count <= 0:
        return []
    try:
        size = path.stat().st_size
    except OSError:
        return []
    data = b""
    with path.open("rb") as handle:
        pos = size
        while pos > 0 and len(data) < max_bytes:
            step = min(BLOCK, pos)
            pos -= step
            handle.seek(pos)
            data = handle.read(step) + data
            if data.count(b"\n") + data.count(b"\r") > count:
                break
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    lines = [line for line in text.split("\n") if line.strip()]
    if pos > 0 and lines:
        lines = lines[1:]
    return lines[-count:]
