"""One colabot per data folder: an exclusive lock held for the process's life.

A second colabot on the same folder would take over the first one's jobs (it marks them
interrupted and kills their processes) and poll Telegram beside it. The lock is an
``flock`` on a file in the folder: the kernel drops it when the process ends, however it
ends, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from pathlib import Path

from workers.errors import DataDirLockedError, StoreError

LOCK_NAME = "colabot.lock"


class DataDirLock:
    """Holds the data folder for this process; :meth:`acquire` refuses a second holder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise DataDirLockedError naming the pid that holds it."""
        if self._fd is not None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(
                str(self.folder), f"cannot use the data folder: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise DataDirLockedError(str(self.folder), holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Let the folder go (the kernel also does it when the process ends)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


INSTANCE_NAME = "instance-id"


def instance_id(folder: Path) -> str:
    """A short random name for this data folder, made once and kept: it tells this
    colabot's cluster jobs from those of another colabot on the same cluster."""
    path = folder / INSTANCE_NAME
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = ""
    if len(text) == 8 and text.isalnum():
        return text
    text = secrets.token_hex(4)
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return text
