"""The ``drive`` results backend: one Google Drive folder per job, through
:mod:`workers.drive.client`.

Layout under the configured folder: ``job-<id>/`` with the outputs, ``job-<id>/checkpoint/``
with the newest checkpoint only, ``job-<id>/inputs/`` with kept uploads, and
``colabot-state.json``. Folders are packed as zips, since Drive stores files.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workers.drive.client import DriveClient
from workers.drive.failures import SERVICE_ACCOUNT_STORAGE, DriveSharingRefusedError
from workers.drive.metadata import DriveFile
from workers.drive.session import Identity
from workers.errors import DriveError, DriveSetupError, ResultsError
from workers.inputs.archives import safe_extract, zip_folder
from workers.jobs import Link
from workers.results.base import UploadProgress

SNAPSHOT_NAME = "colabot-state.json"
FOLDER_MARK = ".folder.zip"
WRITE_PROBE = ".colabot-write-check"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriveSetup:
    """What the start-up check found: who writes, where, and whether it is a shared drive."""

    identity: Identity
    folder_title: str
    shared_drive: bool

    def describe(self) -> str:
        """``service account x@y, writing into "Lab" (a shared drive)``."""
        where = "a shared drive" if self.shared_drive else "My Drive"
        who = f"{self.identity.kind} {self.identity.email}"
        return f"{who}, writing into {self.folder_title!r} ({where})"


class DriveResults:
    """Results in a Google Drive folder."""

    name = "Google Drive"

    def __init__(self, client: DriveClient, folder_id: str, *, share_anyone: bool = False) -> None:
        self.client = client
        self.folder_id = folder_id
        self.share_anyone = share_anyone
        self._folders: dict[str, DriveFile] = {}

    def check(self) -> DriveSetup:
        """Sign in, and make sure the results folder can be written: by a service account
        only inside a shared drive. A small probe file is written and moved to the trash.
        Raise DriveError (or ResultsError) naming what is wrong."""
        self.client.connect()
        folder = self.client.get(self.folder_id)
        if not folder.is_folder:
            raise ResultsError("drive", f"drive.folder_id {self.folder_id} is not a folder")
        identity = self.client.identity()
        if identity.is_service_account and folder.drive_id is None:
            raise DriveSetupError(
                "check",
                f"drive.folder_id {self.folder_id} is in a person's My Drive, and "
                f"{SERVICE_ACCOUNT_STORAGE}",
            )
        with tempfile.TemporaryDirectory() as tmp:
            probe = Path(tmp) / WRITE_PROBE
            probe.write_text("colabot checks that it can write here; this file can go.\n")
            written = self.client.upload(probe, self.folder_id)
        try:
            self.client.trash(written.id)
        except DriveError as exc:
            log.warning("could not move the write check %s to the trash: %s", written.id, exc)
        return DriveSetup(identity, folder.title, shared_drive=folder.drive_id is not None)

    def _folder(self, name: str, *more: str) -> str:
        return self._folder_item(name, *more).id

    def _folder_item(self, name: str, *more: str) -> DriveFile:
        """The folder ``name/more...`` inside the results folder, created where missing."""
        parent, path = self.folder_id, ""
        for part in (name, *more):
            path = f"{path}/{part}"
            if path not in self._folders:
                self._folders[path] = self.client.ensure_folder(part, parent)
            parent = self._folders[path].id
        return self._folders[path]

    def publish(
        self, job_id: int, files: list[tuple[Path, str]], progress: UploadProgress | None
    ) -> list[Link]:
        """Upload each file into the job's folder; links open in Drive.

        With ``share_anyone``, anyone with a link may open it; where the shared drive's
        organisation refuses that, the files stay with their own links (open to whoever may
        read the folder) and a last link, to the job's folder, says why.
        """
        folder = self._folder_item(f"job-{job_id}")
        links = []
        share = self.share_anyone
        refused: DriveSharingRefusedError | None = None
        for path, label in files:

            def report(sent: int, total: int, name: str = path.name) -> None:
                if progress is not None:
                    progress(name, sent, total)

            item = self.client.upload(path, folder.id, progress=report)
            if share:
                try:
                    item = self.client.share_anyone(item.id)
                except DriveSharingRefusedError as exc:
                    refused, share = exc, False  # the policy holds for every file here
            links.append(_link(item, label))
        if refused is not None:
            log.warning("the results of job %s keep private links: %s", job_id, refused)
            links.append(Link(label=private_links_note(folder.title), url=_url(folder)))
        return links

    def sync_checkpoint(self, job_id: int, path: Path) -> str:
        """Upload the newest checkpoint and delete the older ones."""
        folder = self._folder(f"job-{job_id}", "checkpoint")
        with tempfile.TemporaryDirectory() as tmp:
            upload = _as_file(path, Path(tmp))
            item = self.client.upload(upload, folder)
        for old in self.client.list_folder(folder):
            if old.id == item.id:
                continue
            try:
                # Trash, not delete: in a shared drive a Content manager may only trash.
                self.client.trash(old.id)
            except DriveError as exc:
                log.warning("an older checkpoint of job %s stays in Drive: %s", job_id, exc)
        return item.id

    def fetch_checkpoint(self, job_id: int, location: str, dest_dir: Path) -> Path:
        """Download a checkpoint back (unpacking a folder)."""
        return self._fetch(location, dest_dir)

    def save_inputs(self, job_id: int, path: Path) -> str:
        """Keep an uploaded input so another runtime can resume the job."""
        folder = self._folder(f"job-{job_id}", "inputs")
        with tempfile.TemporaryDirectory() as tmp:
            return self.client.upload(_as_file(path, Path(tmp)), folder).id

    def fetch_inputs(self, job_id: int, location: str, dest_dir: Path) -> Path:
        """Bring a kept input back."""
        return self._fetch(location, dest_dir)

    def _fetch(self, file_id: str, dest_dir: Path) -> Path:
        item = self.client.get(file_id)
        dest_dir.mkdir(parents=True, exist_ok=True)
        local = self.client.download(file_id, dest_dir / item.title)
        if item.title.endswith(FOLDER_MARK):
            target = dest_dir / item.title[: -len(FOLDER_MARK)]
            with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
                unpacked = safe_extract(local, Path(tmp) / "x")
                inner = unpacked / target.name
                (inner if inner.exists() else unpacked).replace(target)
            local.unlink()
            return target
        return local

    def save_snapshot(self, data: bytes) -> None:
        """Replace the snapshot file."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / SNAPSHOT_NAME
            path.write_bytes(data)
            self.client.upload(path, self.folder_id)

    def load_snapshot(self) -> bytes | None:
        """The snapshot, or None when there is none yet."""
        item = self.client.find(SNAPSHOT_NAME, self.folder_id)
        if item is None:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            try:
                return self.client.download(item.id, Path(tmp) / SNAPSHOT_NAME).read_bytes()
            except DriveError as exc:
                raise ResultsError("drive", f"could not read the state snapshot: {exc}") from None


def private_links_note(folder_title: str) -> str:
    """What the last link of a job's results says when sharing by link was refused."""
    return (
        f"{folder_title} folder: the links above open only for people who may read it, since "
        "the organisation that owns this shared drive does not allow sharing outside it "
        "(drive.share_anyone could not share them with anyone who has the link)"
    )


def _link(item: DriveFile, label: str) -> Link:
    return Link(label=label, url=_url(item), size=item.size)


def _url(item: DriveFile) -> str:
    return item.view_link or item.download_link or item.id


def _as_file(path: Path, tmp: Path) -> Path:
    """A file to upload: the path itself, or a folder packed as ``<name>.folder.zip``."""
    if path.is_dir():
        return zip_folder(path, tmp / f"{path.name}{FOLDER_MARK}")
    return path
