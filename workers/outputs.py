"""A finished job's outputs: packed as one file each, published to the results backend, and
the small ones picked to be sent in the chat."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from workers.archives import zip_folder
from workers.events import FileReady
from workers.jobs import Link
from workers.kinds.base import Output
from workers.names import unique_name
from workers.results.base import ResultsBackend, UploadProgress

LOG_NAME = "job.log"


@dataclass(frozen=True)
class Packed:
    """An output as one file to keep: a folder zipped, a file as it is (or copied under a
    unique name when another output has the same name)."""

    output: Output
    path: Path
    label: str


def package_outputs(workdir: Path, outputs: list[Output]) -> list[Packed]:
    """Zip folders (a model is a folder) so each output is one file with a unique name."""
    packed_dir = workdir / "packed"
    if packed_dir.exists():
        shutil.rmtree(packed_dir)
    used: set[str] = {LOG_NAME}
    packed: list[Packed] = []
    for output in outputs:
        label = output.label or output.path.name
        name = output.path.name + (".zip" if output.path.is_dir() else "")
        unique = unique_name(name, used)
        if output.path.is_dir():
            path = zip_folder(output.path, packed_dir / unique)
        elif unique != name:
            packed_dir.mkdir(parents=True, exist_ok=True)
            path = packed_dir / unique
            shutil.copy2(output.path, path)
        else:
            path = output.path
        packed.append(Packed(output, path, label))
    return packed


def publish(
    backend: ResultsBackend,
    job_id: int,
    packed: list[Packed],
    log: Path,
    report: UploadProgress,
) -> list[Link]:
    """Upload the packed outputs and the job's log; a link to each."""
    files = [(p.path, p.label) for p in packed]
    if log.exists():
        files.append((log, "log"))
    return backend.publish(job_id, files, report)


def files_for_chat(packed: list[Packed], under_bytes: int) -> list[FileReady]:
    """The outputs to send in the chat as well: pictures, and files small enough to send,
    never a checkpoint (it is for /resume, not for reading)."""
    chosen = []
    for item in packed:
        output = item.output
        if not output.send or output.role == "checkpoint":
            continue
        if output.send_as_photo or item.path.stat().st_size <= under_bytes:
            chosen.append(FileReady(str(item.path), item.label, output.send_as_photo))
    return chosen
