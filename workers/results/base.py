"""The protocol every results backend implements (a local folder, Google Drive)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from workers.jobs import Link

UploadProgress = Callable[[str, int, int], None]
"""Called with (file name, bytes sent, bytes total)."""


class ResultsBackend(Protocol):
    """Where outputs, checkpoints and the state snapshot are kept off the machine.

    Methods are synchronous (file copies, HTTP uploads); the engine runs them in threads.
    """

    name: str

    def publish(
        self, job_id: int, files: list[tuple[Path, str]], progress: UploadProgress | None
    ) -> list[Link]:
        """Store (path, label) files for a job; return one link per file."""
        ...

    def sync_checkpoint(self, job_id: int, path: Path) -> str:
        """Store a job's newest checkpoint, replacing older ones; return its location."""
        ...

    def fetch_checkpoint(self, job_id: int, location: str, dest_dir: Path) -> Path:
        """Bring a stored checkpoint back into ``dest_dir``; return the local path."""
        ...

    def save_snapshot(self, data: bytes) -> None:
        """Store the state snapshot (replacing the previous one)."""
        ...

    def load_snapshot(self) -> bytes | None:
        """The stored state snapshot, or None."""
        ...

    def save_inputs(self, job_id: int, path: Path) -> str:
        """Keep a copy of an input that cannot be fetched again (an upload)."""
        ...

    def fetch_inputs(self, job_id: int, location: str, dest_dir: Path) -> Path:
        """Bring a kept input back into ``dest_dir``."""
        ...
