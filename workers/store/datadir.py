"""One colabot per data folder: an exclusive lock held for the process's life.

A second colabot on the same folder would take over the first one's jobs (it marks them
interrupted and kills their processes) and poll Telegram beside it. The lock is an
``flock`` on a file in the folder: the kernel drops it when the process ends, however it
ends, so a crash never leaves a stale lock behind.

The data folder is private (:func:`make_private`): taking it sets this process's umask so that
colabot and every process it starts create files only its own user can read.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import stat
from pathlib import Path

from workers.errors import DataDirLockedError, StoreError
from workers.safety.files import DIR_MODE, FILE_MODE, private_dir, use_private_umask, write_private

log = logging.getLogger(__name__)

LOCK_NAME = "colabot.lock"


def make_private(folder: Path) -> None:
    """Take ``folder`` as colabot's data folder: from now on this process, and every process
    it starts, creates 0600 files and 0700 folders whatever the umask was; the folder is
    created 0700, and an existing one that others could enter is made 0700 (the log says so).

    Called by whatever opens the data folder first (the lock, the store, the offline chat),
    so the engine used alone is private too. OSError when the folder cannot be used.
    """
    use_private_umask()
    try:
        before: int | None = stat.S_IMODE(folder.stat().st_mode)
    except FileNotFoundError:
        before = None
    private_dir(folder)
    if before is not None and before != DIR_MODE:
        log.warning(
            "made the data folder %s private: its mode was %s, it is now %s",
            folder,
            oct(before),
            oct(DIR_MODE),
        )


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
            make_private(self.folder)
            flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC
            fd = os.open(self.path, flags, FILE_MODE)
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
        with contextlib.suppress(OSError):
            os.fchmod(fd, FILE_MODE)  # a lock file left by an older colabot
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
    make_private(folder)
    write_private(path, (text + "\n").encode())
    return text
