"""colabot's Google Drive client, shared by the results backend and the inputs fetcher.

One synchronous client over PyDrive2 (Drive API v2), in layers: :mod:`~workers.drive.settings`
says how to reach Drive, :mod:`~workers.drive.credentials` loads what ``drive.auth`` names,
:mod:`~workers.drive.session` keeps it signed in and sends every request under the retry
policy, :mod:`~workers.drive.failures` decides what a failed request means,
:mod:`~workers.drive.metadata` reads and changes files and folders, and
:mod:`~workers.drive.transfers` moves their bytes (PyDrive2 cannot tune chunked resumable
uploads with progress or ranged downloads that resume, so those use the same authorized
service directly). :class:`DriveClient` ties the layers together behind one object. Async
callers wrap calls in ``asyncio.to_thread``.

Credentials never appear in log records or error messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from workers.drive.metadata import DriveFile, DriveMetadata
from workers.drive.session import DriveSession, Identity
from workers.drive.settings import DriveSettings, Patience
from workers.drive.transfers import DriveTransfers, Progress


class DriveClient:
    """Google Drive operations for colabot; every method raises DriveError subclasses only.

    Methods connect on first use and refresh the access token before each request when it is
    within five minutes of expiring. Instances may be shared between threads.
    """

    def __init__(self, settings: DriveSettings, patience: Patience | None = None) -> None:
        self._session = DriveSession(settings, patience)
        self._metadata = DriveMetadata(self._session)
        self._transfers = DriveTransfers(self._session, self._metadata)

    # ---------------------------------------------------------------- session

    @property
    def settings(self) -> DriveSettings:
        """The settings this client was built with."""
        return self._session.settings

    @property
    def account(self) -> str | None:
        """The service account's e-mail address, the one to share folders with; else None."""
        return self._session.account

    def identity(self) -> Identity:
        """Who the credentials act as, by Drive's own account (``about``)."""
        return self._session.identity()

    def connect(self) -> None:
        """Sign in now (see :meth:`DriveSession.connect`); DriveAuthError names the setting
        to fix when the credentials are missing, unreadable, malformed or refused."""
        self._session.connect()

    # --------------------------------------------------------------- metadata

    def get(self, file_id: str, resource_key: str | None = None) -> DriveFile:
        """Metadata of a file or folder (see :meth:`DriveMetadata.get`)."""
        return self._metadata.get(file_id, resource_key)

    def resolve(self, file_id: str, resource_key: str | None = None) -> DriveFile:
        """A file's metadata, following shortcuts to what they point at."""
        return self._metadata.resolve(file_id, resource_key)

    def list_folder(self, folder_id: str, resource_key: str | None = None) -> list[DriveFile]:
        """Everything directly inside a folder (not trashed), all pages of it."""
        return self._metadata.list_folder(folder_id, resource_key)

    def find(self, title: str, parent_id: str) -> DriveFile | None:
        """The first item titled ``title`` directly inside ``parent_id``, if any."""
        return self._metadata.find(title, parent_id)

    def ensure_folder(self, title: str, parent_id: str) -> DriveFile:
        """The folder titled ``title`` inside ``parent_id`` (``root`` for My Drive), created if
        missing."""
        return self._metadata.ensure_folder(title, parent_id)

    def share_anyone(self, file_id: str, role: Literal["reader", "writer"] = "reader") -> DriveFile:
        """Let anyone with the link open the file (see :meth:`DriveMetadata.share_anyone`)."""
        return self._metadata.share_anyone(file_id, role)

    def delete(self, file_id: str) -> None:
        """Delete permanently (a folder with its contents); an id already gone is not an error."""
        self._metadata.delete(file_id)

    def trash(self, file_id: str) -> None:
        """Move a file to the trash (see :meth:`DriveMetadata.trash`)."""
        self._metadata.trash(file_id)

    # -------------------------------------------------------------- transfers

    def upload(
        self,
        path: Path,
        parent_id: str,
        title: str | None = None,
        progress: Progress | None = None,
    ) -> DriveFile:
        """Upload a local file into a folder (see :meth:`DriveTransfers.upload`)."""
        return self._transfers.upload(path, parent_id, title, progress)

    def download(
        self,
        file_id: str,
        dest: Path,
        progress: Progress | None = None,
        *,
        resource_key: str | None = None,
    ) -> Path:
        """Download a file to ``dest`` (see :meth:`DriveTransfers.download`)."""
        return self._transfers.download(file_id, dest, progress, resource_key=resource_key)

    def download_item(
        self,
        item: DriveFile,
        dest: Path,
        progress: Progress | None = None,
        *,
        max_bytes: int | None = None,
    ) -> Path:
        """Download a file whose metadata is at hand (see :meth:`DriveTransfers.download_item`)."""
        return self._transfers.download_item(item, dest, progress, max_bytes=max_bytes)

    def export(self, item: DriveFile, mime_type: str, dest: Path) -> Path:
        """A Google Docs/Sheets file exported as ``mime_type`` (Drive exports at most 10 MB)."""
        return self._transfers.export(item, mime_type, dest)

    def download_folder(
        self,
        folder_id: str,
        dest_dir: Path,
        progress: Progress | None = None,
        *,
        max_bytes: int | None = None,
        resource_key: str | None = None,
    ) -> list[Path]:
        """Download a folder tree (see :meth:`DriveTransfers.download_folder`)."""
        return self._transfers.download_folder(
            folder_id, dest_dir, progress, max_bytes=max_bytes, resource_key=resource_key
        )
