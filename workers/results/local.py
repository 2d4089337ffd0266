"""The ``local`` results backend: a folder, such as a mounted Google Drive.

Layout under the root: ``job-<id>/`` with the outputs, ``job-<id>/checkpoint/`` with the newest
checkpoint only, ``job-<id>/inputs/`` with kept uploads, and ``colabot-state.json``.
Every file is written under a temporary name and renamed, so a crash never leaves a torn file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from workers.errors import ResultsError
from workers.jobs import Link
from workers.results.base import UploadProgress
from workers.safety.names import shown
from workers.safety.paths import Refused, copy_folder, join_inside

SNAPSHOT_NAME = "colabot-state.json"
COPY_BLOCK = 4 * 1024 * 1024


def copy_with_progress(
    src: Path, dest: Path, progress: UploadProgress | None, label: str = ""
) -> None:
    """Copy a file to ``dest`` via a temporary name, reporting bytes copied."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    total = src.stat().st_size
    tmp = dest.with_name(f".{dest.name}.part")
    sent = 0
    with src.open("rb") as reader, tmp.open("wb") as writer:
        while block := reader.read(COPY_BLOCK):
            writer.write(block)
            sent += len(block)
            if progress is not None:
                progress(label or src.name, sent, total)
        writer.flush()
        os.fsync(writer.fileno())
    tmp.replace(dest)


def copy_tree(src: Path, dest: Path) -> None:
    """Copy a file or folder to ``dest``, replacing what was there."""
    tmp = dest.with_name(f".{dest.name}.part")
    if tmp.exists():
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    if src.is_dir():
        copy_folder(src, tmp)
    else:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, tmp)
    if dest.exists():
        shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
    tmp.replace(dest)


class LocalResults:
    """Results in a folder on this machine (or a mounted network drive)."""

    name = "local folder"

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser()

    def check(self) -> None:
        """Make sure the folder exists and is writable; raise ResultsError otherwise."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".write-test-"):
                pass
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ResultsError(
                "local", f"results.dir {self.root} is not writable: {reason}"
            ) from None

    def job_dir(self, job_id: int) -> Path:
        """The folder of one job."""
        return self.root / f"job-{job_id}"

    def publish(
        self, job_id: int, files: list[tuple[Path, str]], progress: UploadProgress | None
    ) -> list[Link]:
        """Copy each file into the job's folder; links are the copies' paths."""
        links = []
        for path, label in files:
            dest = self.job_dir(job_id) / path.name
            try:
                copy_with_progress(path, dest, progress, label)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise ResultsError("local", f"could not copy {path.name}: {reason}") from None
            links.append(Link(label=label, url=str(dest), size=dest.stat().st_size))
        return links

    def sync_checkpoint(self, job_id: int, path: Path) -> str:
        """Keep only the newest checkpoint (a file or folder) of a job."""
        folder = self.job_dir(job_id) / "checkpoint"
        target = folder / path.name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            copy_tree(path, target)
            for old in folder.iterdir():
                if old.name != path.name and not old.name.startswith("."):
                    shutil.rmtree(old) if old.is_dir() else old.unlink()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ResultsError("local", f"could not save the checkpoint: {reason}") from None
        return str(target.relative_to(self.root))

    def fetch_checkpoint(self, job_id: int, location: str, dest_dir: Path) -> Path:
        """Copy a stored checkpoint back."""
        return self._bring_back(location, dest_dir, "saved checkpoint")

    def save_inputs(self, job_id: int, path: Path) -> str:
        """Keep a copy of an uploaded input so another runtime can resume the job."""
        target = self.job_dir(job_id) / "inputs" / path.name
        try:
            copy_tree(path, target)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ResultsError("local", f"could not keep the input: {reason}") from None
        return str(target.relative_to(self.root))

    def fetch_inputs(self, job_id: int, location: str, dest_dir: Path) -> Path:
        """Bring a kept input back."""
        return self._bring_back(location, dest_dir, "kept input")

    def _bring_back(self, location: str, dest_dir: Path, what: str) -> Path:
        # The location comes from the state snapshot, in a folder others may write to.
        try:
            source = join_inside(self.root, location)
        except Refused as exc:
            reason = f"the {what} {shown(location)} is refused: {exc.reason}"
            raise ResultsError("local", reason) from None
        if not source.exists():
            raise ResultsError("local", f"the {what} {source} is missing")
        dest_dir.mkdir(parents=True, exist_ok=True)
        target = dest_dir / source.name
        copy_tree(source, target)
        return target

    def save_snapshot(self, data: bytes) -> None:
        """Write the snapshot atomically."""
        target = self.root / SNAPSHOT_NAME
        tmp = target.with_name(f".{SNAPSHOT_NAME}.part")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            tmp.replace(target)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ResultsError("local", f"could not save the state snapshot: {reason}") from None

    def load_snapshot(self) -> bytes | None:
        """The snapshot, or None."""
        target = self.root / SNAPSHOT_NAME
        try:
            return target.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ResultsError("local", f"could not read the state snapshot: {reason}") from None
