"""Reading the end of a job's log without loading the whole file."""

from __future__ import annotations

from pathlib import Path

BLOCK = 64 * 1024
MAX_LINE_CHARS = 2000
CUT_MARK = "…"


def tail_lines(
    path: Path,
    count: int,
    *,
    max_bytes: int = 4 * 1024 * 1024,
    max_line: int = MAX_LINE_CHARS,
) -> list[str]:
    """The last ``count`` lines of a text file (``\\r`` ends a line too), reading from the end.

    A line longer than ``max_line`` characters is shown by its end, after a ``…``; a file
    that ends in one line longer than ``max_bytes`` still shows that line's end.
    """
    found = _tail(path, count, max_bytes, max_line, whole=False)
    return found if found is not None else []


def short_tail_lines(path: Path, count: int, *, max_line: int = MAX_LINE_CHARS) -> list[str] | None:
    """The last ``count`` lines as :func:`tail_lines` gives them, when they lie within the
    file's last block (64 KB); None when they do not, and :func:`tail_lines` must read on.
    Cheap enough for the event loop: at most one block is read."""
    return _tail(path, count, BLOCK, max_line, whole=True)


def _tail(
    path: Path, count: int, max_bytes: int, max_line: int, *, whole: bool
) -> list[str] | None:
    """The last lines, reading at most about ``max_bytes`` from the end; with ``whole``,
    None when that was not enough to find them all."""
    if count <= 0:
        return []
    try:
        size = path.stat().st_size
    except OSError:
        return []
    data = b""
    enough = False
    with path.open("rb") as handle:
        pos = size
        while pos > 0 and len(data) < max_bytes:
            step = min(BLOCK, pos)
            pos -= step
            handle.seek(pos)
            data = handle.read(step) + data
            if data.count(b"\n") + data.count(b"\r") > count:
                enough = True
                break
    if whole and pos > 0 and not enough:
        return None
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    lines = [line for line in text.split("\n") if line.strip()]
    if pos > 0 and len(lines) > 1:
        lines = lines[1:]  # the first one was read only in part
    elif pos > 0 and lines:
        lines = [CUT_MARK + lines[0]]
    return [_shortened(line, max_line) for line in lines[-count:]]


def _shortened(line: str, limit: int) -> str:
    if len(line) <= limit:
        return line
    return CUT_MARK + line[-limit:]
