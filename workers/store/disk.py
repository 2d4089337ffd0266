"""Free space in the data folder: refuse new jobs when it runs low, and keep a small reserve.

A job that fills the disk must fail with that reason, and colabot must still be able to record
it. The reserve is a file of a few hundred KB that colabot deletes the moment a write fails
for lack of space, so that the database can take the failure, and makes again once there is
room.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from workers.errors import DiskSpaceError
from workers.safety.files import open_to_change

MB = 1024 * 1024
RESERVE_NAME = ".colabot-reserve"
RESERVE_BYTES = 512 * 1024
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


@dataclass
class DiskGuard:
    """Watches the free space of one folder (the data folder)."""

    folder: Path
    min_free_mb: float = 0.0

    @property
    def reserve(self) -> Path:
        """The reserve file."""
        return self.folder / RESERVE_NAME

    def free_mb(self) -> float:
        """MB free for colabot in the folder (0 when it cannot be read)."""
        try:
            return shutil.disk_usage(self.folder).free / MB
        except OSError:
            return 0.0

    def low(self) -> bool:
        """Whether less than ``min_free_mb`` is free."""
        return self.free_mb() < self.min_free_mb

    def full_reason(self) -> str:
        """``disk full: 0.4 MB free in /data``, for a job that ran out of space."""
        return f"disk full: {self.free_mb():.1f} MB free in {self.folder}"

    def check_room(self) -> None:
        """Raise DiskSpaceError when a new job should not start."""
        free = self.free_mb()
        if free < self.min_free_mb:
            raise DiskSpaceError(str(self.folder), free, self.min_free_mb)

    def release_reserve(self) -> None:
        """Give the reserve's space back, so the failure can be recorded."""
        with contextlib.suppress(OSError):
            self.reserve.unlink()

    def keep_reserve(self) -> None:
        """Make the reserve file when it is missing and there is room for it."""
        if self.reserve.exists():
            return
        if self.free_mb() * MB < RESERVE_BYTES * 4:
            return
        try:
            with self.reserve.open("wb") as handle:
                os.posix_fallocate(handle.fileno(), 0, RESERVE_BYTES)
        except OSError:
            with contextlib.suppress(OSError):
                self.reserve.unlink()


def trim_log(path: Path, keep_bytes: int = 256 * 1024) -> None:
    """Cut a log that filled the disk to its first and last ``keep_bytes``, with a note."""
    try:
        size = path.stat().st_size
        if size <= 2 * keep_bytes:
            return
        with open_to_change(path) as handle:
            handle.seek(size - keep_bytes)
            tail = handle.read(keep_bytes)
            note = f"\n[colabot: {size - 2 * keep_bytes} bytes cut here: the disk was full]\n"
            handle.seek(keep_bytes)
            handle.write(note.encode() + tail)
            handle.truncate()
    except OSError:
        return
