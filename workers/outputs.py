"""A finished job's outputs: packed as one file each, published to the results backend, and
the small ones picked to be sent in the chat.

Only what lies inside the job's folder leaves it: an output (as a kind or its result.json
names it) that leads elsewhere, or a link inside an output folder that does, is left out with
a note, never followed, packed or published.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workers.events import Album, FileReady
from workers.inputs.archives import zip_folder
from workers.jobs import Link
from workers.kinds.base import Output
from workers.results.base import ResultsBackend, UploadProgress
from workers.safety.names import label as one_line
from workers.safety.names import shown, unique_name
from workers.safety.paths import inside

log = logging.getLogger(__name__)

LOG_NAME = "job.log"

Note = Callable[[str], None]
"""Where a note for the person goes (a notice about the job)."""


@dataclass(frozen=True)
class Packed:
    """An output as one file to keep: a folder zipped, a file as it is (or copied under a
    unique name when another output has the same name)."""

    output: Output
    path: Path
    label: str


def _label(output: Output) -> str:
    return one_line(output.label or output.path.name)


def outside_note(output: Output) -> str:
    """The note for an output that leads outside the job's folder."""
    return (
        f"{_label(output)} was left out of the results: it leads outside the job's folder "
        "(a link, or a path the job reported), so it was not packed or published."
    )


def link_note(output: Output, link: Path) -> str:
    """The note for a link inside an output folder that leads out of it."""
    where = link.relative_to(output.path.parent).as_posix()
    return (
        f"{shown(where)} was left out of {_label(output)}: it is a link that leads outside "
        "that folder."
    )


def inside_job(workdir: Path, outputs: list[Output], note: Note | None = None) -> list[Output]:
    """The outputs that lie inside the job's folder with links followed; each other one is
    told to ``note`` (logged when there is none)."""
    kept = []
    for output in outputs:
        if inside(output.path, [workdir]):
            kept.append(output)
        else:
            _tell(note, outside_note(output))
    return kept


def _tell(note: Note | None, text: str) -> None:
    if note is None:
        log.warning("%s", text)
    else:
        note(text)


def package_outputs(workdir: Path, outputs: list[Output], note: Note | None = None) -> list[Packed]:
    """Zip folders (a model is a folder) so each output is one file with a unique name.

    Outputs outside ``workdir``, and links in a folder that lead out of it, are left out;
    ``note`` is told about each (they are logged when there is none).
    """
    packed_dir = workdir / "packed"
    if packed_dir.is_symlink() or packed_dir.is_file():
        packed_dir.unlink()  # a link planted there is removed, never written through
    elif packed_dir.exists():
        shutil.rmtree(packed_dir)
    used: set[str] = {LOG_NAME}
    packed: list[Packed] = []
    for output in inside_job(workdir, outputs, note):
        label = _label(output)
        name = output.path.name + (".zip" if output.path.is_dir() else "")
        unique = unique_name(name, used)
        if output.path.is_dir():
            skipped: list[Path] = []
            path = zip_folder(output.path, packed_dir / unique, skipped=skipped)
            for link in skipped:
                _tell(note, link_note(output, link))
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


def files_for_chat(packed: list[Packed], under_bytes: int) -> list[FileReady | Album]:
    """The outputs to send in the chat as well, in order: pictures, clips (as videos that
    play in the chat), and files small enough to send; never a checkpoint (it is for
    /resume, not for reading). Pictures that share an album name go as one album, where
    the first of them was, and not one by one as well."""
    chosen: list[FileReady | Album] = []
    albums: dict[str, Album] = {}
    for item in packed:
        output = item.output
        if not output.send or output.role == "checkpoint":
            continue
        if output.album:
            album = albums.get(output.album)
            if album is None:
                album = albums[output.album] = Album([], [], one_line(output.album))
                chosen.append(album)
            album.paths.append(str(item.path))
            album.captions.append(item.label)
        elif output.send_as_photo or output.send_as_video:
            chosen.append(
                FileReady(str(item.path), item.label, output.send_as_photo, output.send_as_video)
            )
        elif item.path.stat().st_size <= under_bytes:
            chosen.append(FileReady(str(item.path), item.label))
    return chosen
