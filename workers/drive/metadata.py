"""Drive's files as colabot sees them, and the calls on their metadata: reading a file (through
its resource key when a link carries one), following shortcuts, listing folders page by page
(shared drives included), creating folders, sharing by link, trashing and deleting."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from workers.drive.session import DriveSession
from workers.errors import DrivePermissionError

FOLDER_MIME = "application/vnd.google-apps.folder"
SHORTCUT_MIME = "application/vnd.google-apps.shortcut"
RESOURCE_KEYS_HEADER = "X-Goog-Drive-Resource-Keys"

_GOOGLE_APPS_PREFIX = "application/vnd.google-apps."


@dataclass(frozen=True)
class DriveFile:
    """What colabot needs to know about a Drive file or folder."""

    id: str
    title: str
    size: int | None
    mime_type: str
    md5: str | None
    view_link: str
    download_link: str | None
    parent_ids: tuple[str, ...]
    drive_id: str | None = None
    resource_key: str | None = None
    shortcut_target: str | None = None
    shortcut_target_key: str | None = None
    export_links: tuple[tuple[str, str], ...] = ()

    @property
    def is_folder(self) -> bool:
        """Whether this is a folder."""
        return self.mime_type == FOLDER_MIME

    @property
    def is_shortcut(self) -> bool:
        """Whether this is a shortcut to another file (follow ``shortcut_target``)."""
        return self.mime_type == SHORTCUT_MIME

    @property
    def is_google_doc(self) -> bool:
        """Whether this is a Google Docs/Sheets/Slides/... file, which has no bytes to fetch."""
        return (
            self.mime_type.startswith(_GOOGLE_APPS_PREFIX)
            and not self.is_folder
            and not self.is_shortcut
        )

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> DriveFile:
        """Build from a Drive v2 file resource."""
        size = meta.get("fileSize")
        shortcut = meta.get("shortcutDetails") or {}
        return cls(
            id=str(meta["id"]),
            title=str(meta.get("title", "")),
            size=int(size) if size is not None else None,
            mime_type=str(meta.get("mimeType", "")),
            md5=_optional_str(meta.get("md5Checksum")),
            view_link=str(meta.get("alternateLink", "")),
            download_link=_optional_str(meta.get("webContentLink")),
            parent_ids=tuple(str(p["id"]) for p in meta.get("parents") or () if "id" in p),
            drive_id=_optional_str(meta.get("driveId") or meta.get("teamDriveId")),
            resource_key=_optional_str(meta.get("resourceKey")),
            shortcut_target=_optional_str(shortcut.get("targetId")),
            shortcut_target_key=_optional_str(shortcut.get("targetResourceKey")),
            export_links=tuple(sorted((meta.get("exportLinks") or {}).items())),
        )


def key_headers(item: DriveFile) -> dict[str, str]:
    """The resource-key header a link-shared file needs on every request."""
    if item.resource_key:
        return {RESOURCE_KEYS_HEADER: f"{item.id}/{item.resource_key}"}
    return {}


class DriveMetadata:
    """Metadata calls through a :class:`DriveSession`; every method raises DriveError
    subclasses only. Instances may be shared between threads."""

    def __init__(self, session: DriveSession) -> None:
        self._session = session
        self._folder_lock = threading.Lock()

    def get(self, file_id: str, resource_key: str | None = None) -> DriveFile:
        """Metadata of a file or folder; DrivePermissionError when the credentials cannot
        read it. ``resource_key`` opens files shared by a link that carries one."""

        def fetch() -> DriveFile:
            request = self._session.service.files().get(fileId=file_id, supportsAllDrives=True)
            if resource_key:
                request.headers[RESOURCE_KEYS_HEADER] = f"{file_id}/{resource_key}"
            return DriveFile.from_metadata(self._session.execute(request))

        return self._session.call("get", fetch, f"cannot read {file_id}")

    def resolve(self, file_id: str, resource_key: str | None = None) -> DriveFile:
        """A file's metadata, following shortcuts to what they point at."""
        item = self.get(file_id, resource_key)
        seen = {item.id}
        while item.is_shortcut and item.shortcut_target and item.shortcut_target not in seen:
            item = self.get(item.shortcut_target, item.shortcut_target_key)
            seen.add(item.id)
        return item

    def list_folder(self, folder_id: str, resource_key: str | None = None) -> list[DriveFile]:
        """Everything directly inside a folder (not trashed), all pages of it."""
        query = f"{_quote(folder_id)} in parents and trashed = false"
        return self._list(query, folder_id, resource_key)

    def find(self, title: str, parent_id: str, *, folders: bool | None = None) -> DriveFile | None:
        """The first item titled ``title`` directly inside ``parent_id``, if any: only a
        folder when ``folders`` is True, only a file when it is False."""
        query = f"title = {_quote(title)} and {_quote(parent_id)} in parents and trashed = false"
        if folders is not None:
            query += f" and mimeType {'=' if folders else '!='} {_quote(FOLDER_MIME)}"
        found = self._list(query, parent_id)
        return found[0] if found else None

    def _list(self, query: str, folder_id: str, resource_key: str | None = None) -> list[DriveFile]:
        def fetch() -> list[DriveFile]:
            files = self._session.service.files()
            found: list[DriveFile] = []
            token: str | None = None
            while True:
                request = files.list(
                    q=query,
                    supportsAllDrives=True,
                    includeItemsFromAllDrives=True,
                    pageToken=token,
                    maxResults=1000,
                )
                if resource_key:
                    request.headers[RESOURCE_KEYS_HEADER] = f"{folder_id}/{resource_key}"
                page = self._session.execute(request)
                found.extend(DriveFile.from_metadata(item) for item in page.get("items", []))
                token = page.get("nextPageToken")
                if not token:
                    return found

        return self._session.call("list", fetch, f"cannot read folder {folder_id}")

    def ensure_folder(self, title: str, parent_id: str) -> DriveFile:
        """The folder titled ``title`` inside ``parent_id`` (``root`` for My Drive), created if
        missing."""

        def find_or_create() -> DriveFile:
            existing = self.find(title, parent_id, folders=True)
            if existing is not None:
                return existing
            body = {"title": title, "mimeType": FOLDER_MIME, "parents": [{"id": parent_id}]}
            request = self._session.service.files().insert(body=body, supportsAllDrives=True)
            return DriveFile.from_metadata(self._session.execute(request))

        with self._folder_lock:
            return self._session.call(
                "create folder", find_or_create, f"cannot write to {parent_id}"
            )

    def share_anyone(self, file_id: str, role: Literal["reader", "writer"] = "reader") -> DriveFile:
        """Let anyone with the link open the file (not listed publicly); returns its metadata,
        whose ``view_link``/``download_link`` can then be handed out. Raises
        DriveSharingRefusedError where the organisation that owns the shared drive allows no
        sharing outside it."""

        def share() -> DriveFile:
            service = self._session.service
            permission = {"type": "anyone", "value": "anyone", "role": role, "withLink": True}
            self._session.execute(
                service.permissions().insert(
                    fileId=file_id, body=permission, supportsAllDrives=True
                )
            )
            request = service.files().get(fileId=file_id, supportsAllDrives=True)
            return DriveFile.from_metadata(self._session.execute(request))

        return self._session.call("share", share, f"cannot share {file_id}")

    def delete(self, file_id: str) -> None:
        """Delete permanently (a folder with its contents); an id already gone is not an error."""

        def remove() -> None:
            self._session.execute(
                self._session.service.files().delete(fileId=file_id, supportsAllDrives=True)
            )

        try:
            self._session.call("delete", remove, f"cannot delete {file_id}")
        except DrivePermissionError as error:
            if error.status != 404:
                raise

    def trash(self, file_id: str) -> None:
        """Move a file to the trash: in a shared drive, Content managers may trash files but
        only Managers may delete them for good. An id already gone is not an error."""

        def move() -> None:
            self._session.execute(
                self._session.service.files().trash(fileId=file_id, supportsAllDrives=True)
            )

        try:
            self._session.call("trash", move, f"cannot move {file_id} to the trash")
        except DrivePermissionError as error:
            if error.status != 404:
                raise


def _quote(value: str) -> str:
    """A Drive query string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _optional_str(value: Any) -> str | None:
    return str(value) if value is not None else None
