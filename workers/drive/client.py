"""colabot's Google Drive client, shared by the results backend and the inputs fetcher.

One synchronous client over PyDrive2 (Drive API v2): PyDrive2 holds the credentials and the
discovery-built service, metadata calls go through PyDrive2's objects, and the transfers that
PyDrive2 cannot tune (chunked resumable uploads with progress, ranged downloads that resume)
use the same authorized service directly. Async callers wrap calls in ``asyncio.to_thread``.

Credentials never appear in log records or error messages.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import http.client
import json
import logging
import mimetypes
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from workers.errors import (
    DriveAuthError,
    DriveError,
    DrivePermissionError,
    DriveQuotaError,
    DriveSetupError,
)
from workers.inputs.sources import parse_drive_ref
from workers.safety.names import safe_name, unique_name
from workers.safety.paths import Refused, join_inside
from workers.safety.redaction import register_secret

try:
    import httplib2
    import oauth2client
    from googleapiclient.discovery import build_from_document
    from googleapiclient.discovery_cache import get_static_doc
    from googleapiclient.errors import HttpError
    from googleapiclient.http import HttpRequest, MediaIoBaseUpload
    from oauth2client.client import AccessTokenRefreshError, GoogleCredentials, OAuth2Credentials
    from oauth2client.service_account import ServiceAccountCredentials
    from pydrive2.auth import AuthError, GoogleAuth
    from pydrive2.drive import GoogleDrive
    from pydrive2.files import ApiRequestError
    from pydrive2.settings import InvalidConfigError
except ImportError as missing:  # the optional "drive" extra is not installed
    _MISSING_LIBRARY: str | None = missing.name or "PyDrive2"
else:
    _MISSING_LIBRARY = None

    class _PacedRequest(HttpRequest):  # type: ignore[misc]  # googleapiclient is untyped
        """googleapiclient's request; its retries wait ``backoff_s`` times the randomized
        ``2**n`` seconds googleapiclient waits (``drive.backoff_s = 1``: its own pacing)."""

        def __init__(self, *args: Any, backoff_s: float, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._rand = lambda: random.random() * backoff_s

    class _ChunkedFile(MediaIoBaseUpload):  # type: ignore[misc]  # googleapiclient is untyped
        """Resumable media that hands each chunk to the transport as bytes, never as a stream.

        httplib2 silently re-sends a request once when a kept-alive connection turns out to be
        closed, and oauth2client re-sends once after refreshing a token on a 401; both re-send
        the same body object, and a stream slice that was already read would go out empty.
        """

        def has_stream(self) -> bool:
            """Make googleapiclient read each chunk into memory."""
            return False


__all__ = [
    "FOLDER_MIME",
    "SHORTCUT_MIME",
    "DriveClient",
    "DriveFile",
    "DriveSettings",
    "Identity",
    "Progress",
    "parse_drive_ref",
]

FOLDER_MIME = "application/vnd.google-apps.folder"
SHORTCUT_MIME = "application/vnd.google-apps.shortcut"
DRIVE_SCOPES = (
    "https://www.googleapis.com/auth/drive",
    "https://www.googleapis.com/auth/drive.file",
)
RESOURCE_KEYS_HEADER = "X-Goog-Drive-Resource-Keys"
SERVICE_ACCOUNT_STORAGE = (
    "a service account has no storage of its own, so it can only write into a shared drive: "
    "put drive.folder_id in a shared drive where the service account is a Content manager "
    '(or Manager), or sign in as a person instead (drive.auth = "oauth_token_file" with a '
    'token file, or "colab" in a Colab notebook)'
)
DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"
AUTH_KINDS = ("service_account", "colab", "oauth_token_file")

Progress = Callable[[int, int], None]
"""Called as ``progress(bytes_done, total_bytes)``, never with a smaller ``bytes_done``."""

_T = TypeVar("_T")
_logger = logging.getLogger(__name__)

_GOOGLE_APPS_PREFIX = "application/vnd.google-apps."
_REFRESH_MARGIN = timedelta(minutes=5)
_MAX_BACKOFF_S = 64.0
_RATE_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded"})
_QUOTA_REASONS = _RATE_REASONS | {
    "storageQuotaExceeded",
    "quotaExceeded",
    "dailyLimitExceeded",
    "sharingRateLimitExceeded",
}
_NETWORK_ERRNOS = frozenset(
    {errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTUNREACH, errno.ECONNABORTED, errno.ETIMEDOUT}
)
_SERVICE_ACCOUNT_FIELDS = ("client_email", "private_key", "private_key_id", "client_id")


@dataclass(frozen=True)
class DriveSettings:
    """How to reach Google Drive.

    ``auth`` is ``service_account`` (``service_account_file`` is a JSON key), ``colab``
    (the notebook user's Google sign-in) or ``oauth_token_file`` (``token_file`` holds an
    authorized-user login with a refresh token). ``api_url`` replaces Google's endpoints, the
    OAuth2 token endpoint included (``{api_url}token``), for proxies, emulators and tests.
    Uploads and downloads move ``chunk_mb`` MiB per request. Transient failures (5xx, 429,
    rate-limit 403s, broken connections) are retried ``retries`` times by googleapiclient
    (``num_retries``), waiting a random ``0..2**n`` seconds times ``backoff_s``; a download
    or an upload whose connection broke resumes from the bytes already across.
    """

    auth: str
    service_account_file: Path | None = None
    token_file: Path | None = None
    api_url: str = ""
    chunk_mb: int = 8
    retries: int = 5
    backoff_s: float = 1.0
    timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if self.chunk_mb < 1:
            raise ValueError("drive.chunk_mb must be at least 1")
        if self.retries < 0:
            raise ValueError("drive.retries cannot be negative")
        if self.backoff_s < 0 or self.timeout_s <= 0:
            raise ValueError("drive.backoff_s and drive.timeout_s must be positive")

    @property
    def chunk_bytes(self) -> int:
        """Bytes per upload or download request (a multiple of 256 KiB, as Drive requires)."""
        return self.chunk_mb * 1024 * 1024


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


@dataclass(frozen=True)
class Identity:
    """Who the Drive credentials act as: a ``service account`` or a person (``user``)."""

    kind: Literal["service account", "user"]
    email: str

    @property
    def is_service_account(self) -> bool:
        """Whether a service account (no storage of its own) is signed in."""
        return self.kind == "service account"


@dataclass(frozen=True)
class _Failure:
    """One failed attempt, reduced to what decides retrying and the error raised."""

    status: int | None
    reason: str
    message: str
    retryable: bool
    auth: bool = False


class _ProgressReporter:
    """Forwards progress to a callback, dropping repeats and steps backwards."""

    def __init__(self, callback: Progress | None, total: int) -> None:
        self._callback = callback
        self._total = total
        self._last = -1

    def __call__(self, done: int) -> None:
        if self._callback is not None and done > self._last:
            self._last = done
            self._callback(done, self._total)


class DriveClient:
    """Google Drive operations for colabot; every method raises DriveError subclasses only.

    Methods connect on first use and refresh the access token before each request when it is
    within five minutes of expiring. Instances may be shared between threads.
    """

    def __init__(self, settings: DriveSettings) -> None:
        self._settings = settings
        self._lock = threading.RLock()
        self._folder_lock = threading.Lock()
        self._credentials: Any = None
        self._gauth: Any = None
        self._drive: Any = None

    @property
    def settings(self) -> DriveSettings:
        """The settings this client was built with."""
        return self._settings

    @property
    def account(self) -> str | None:
        """The service account's e-mail address, the one to share folders with; else None.

        Colab's sign-in gets its tokens from a metadata server, so its credentials look like
        a machine's service account ("default"); it is the person signed in to Colab.
        """
        if self._settings.auth != "service_account":
            return None
        email = getattr(self._credentials, "service_account_email", None)
        return email if isinstance(email, str) else None

    def identity(self) -> Identity:
        """Who the credentials act as, by Drive's own account (``about``)."""

        def fetch() -> Identity:
            about = self._execute(self._gauth.service.about().get())
            email = str((about.get("user") or {}).get("emailAddress") or about.get("name", ""))
            kind: Literal["service account", "user"] = (
                "service account" if self._settings.auth == "service_account" else "user"
            )
            return Identity(kind, email or (self.account or "unknown"))

        return self._call("about", fetch, "cannot read the account")

    # ------------------------------------------------------------- connection

    def connect(self) -> None:
        """Load the configured credentials, exchange them for an access token, build the service.

        Raises DriveAuthError (``setting`` names the config key to fix) when the credentials
        are missing, unreadable, malformed or refused.
        """
        if _MISSING_LIBRARY is not None:
            raise DriveError(
                "connect",
                f"the Google Drive libraries are not installed ({_MISSING_LIBRARY} is missing); "
                "install colabot[drive]",
            )
        with self._lock:
            credentials = self._load_credentials()
            if self._settings.api_url:
                credentials.token_uri = self._endpoint("token")
            self._credentials = credentials
            self._refresh_credentials()
            gauth = GoogleAuth(settings=_pydrive_settings(), http_timeout=self._settings.timeout_s)
            gauth.credentials = credentials
            if self._settings.auth == "service_account":
                gauth.auth_method = "service"
            gauth.http = gauth.Get_Http_Object()
            gauth.service = self._build_service(gauth.http)
            self._gauth = gauth
            self._drive = GoogleDrive(gauth)

    def _endpoint(self, path: str) -> str:
        return self._settings.api_url.rstrip("/") + "/" + path

    def _build_service(self, http: Any) -> Any:
        # Setting the discovery document's rootUrl moves every endpoint the document derives
        # from it (API calls, media uploads, batch) to api_url with its own scheme; the
        # client_options api_endpoint override only swaps the host of upload URLs.
        document = json.loads(get_static_doc("drive", "v2"))
        if self._settings.api_url:
            document["rootUrl"] = self._endpoint("")
        builder = functools.partial(_PacedRequest, backoff_s=self._settings.backoff_s)
        return build_from_document(document, http=http, requestBuilder=builder)

    def _load_credentials(self) -> Any:
        kind = self._settings.auth
        if kind == "service_account":
            return self._service_account_credentials()
        if kind == "oauth_token_file":
            return self._token_file_credentials()
        if kind == "colab":
            return _colab_credentials()
        raise DriveAuthError(
            "drive.auth", f"unknown method {kind!r}; use one of {', '.join(AUTH_KINDS)}"
        )

    def _service_account_credentials(self) -> Any:
        setting = "drive.service_account_file"
        path = self._settings.service_account_file
        data = _read_json_file(path, setting)
        if data.get("type") != "service_account":
            raise DriveAuthError(
                setting, f"{path} is not a service account key (download a JSON key)"
            )
        missing = [name for name in _SERVICE_ACCOUNT_FIELDS if not data.get(name)]
        if missing:
            raise DriveAuthError(setting, f"{path} lacks {', '.join(missing)}")
        # The key itself is masked wherever it appears by its -----BEGIN shape.
        register_secret(str(data.get("private_key_id", "")))
        # oauth2client logs each signed JWT assertion, a credential, at DEBUG level.
        logging.getLogger("oauth2client.crypt").setLevel(logging.INFO)
        try:
            return ServiceAccountCredentials.from_json_keyfile_dict(data, scopes=[DRIVE_SCOPE])
        except Exception:
            # Signer backends raise their own types; the key material must not reach a log.
            raise DriveAuthError(setting, f"the private key in {path} cannot be loaded") from None

    def _token_file_credentials(self) -> Any:
        """An authorized-user login: gcloud's or Colab's file (``"type": "authorized_user"``),
        google-auth's ``token.json`` (what Google's quickstart writes: no ``type``), or
        oauth2client's own format."""
        setting = "drive.token_file"
        path = self._settings.token_file
        data = _read_json_file(path, setting)
        register_secret(str(data.get("client_secret", "")), str(data.get("refresh_token", "")))
        if data.get("_class") in ("OAuth2Credentials", "GoogleCredentials"):
            credentials = OAuth2Credentials.from_json(json.dumps(data))
        else:
            needed = ("client_id", "client_secret", "refresh_token")
            missing = [key for key in needed if key not in data or data[key] is None]
            if missing and data.get("type") not in (None, "authorized_user"):
                raise DriveAuthError(
                    setting, f"{path} is not an authorized-user or oauth2client credentials file"
                )
            if missing:
                raise DriveAuthError(setting, f"{path} lacks {', '.join(missing)}")
            if not data["refresh_token"]:
                raise DriveAuthError(setting, f"{path} has no refresh token; sign in again")
            _warn_about_scopes(data.get("scopes"), path)
            credentials = GoogleCredentials(
                access_token=None,
                client_id=data["client_id"],
                client_secret=data["client_secret"],
                refresh_token=data["refresh_token"],
                token_expiry=None,
                token_uri=data.get("token_uri") or oauth2client.GOOGLE_TOKEN_URI,
                user_agent="colabot",
            )
        if not credentials.refresh_token:
            raise DriveAuthError(setting, f"{path} has no refresh token; sign in again")
        return credentials

    def _auth_setting(self) -> str:
        return {
            "service_account": "drive.service_account_file",
            "oauth_token_file": "drive.token_file",
        }.get(self._settings.auth, "drive.auth")

    def _refresh_credentials(self) -> None:
        """Exchange the credentials for a fresh access token, retrying network failures."""
        http = httplib2.Http(timeout=self._settings.timeout_s)
        attempt = 0
        while True:
            attempt += 1
            try:
                self._credentials.refresh(http)
                return
            except Exception as exc:
                self._after_failure("authentication", exc, attempt, "")

    def _expires_soon(self) -> bool:
        credentials = self._credentials
        if credentials.access_token is None or credentials.invalid:
            return True
        expiry = credentials.token_expiry
        if expiry is None:
            return False
        now = datetime.now(UTC).replace(tzinfo=None)
        return bool(expiry - _REFRESH_MARGIN <= now)

    def _ready(self) -> Any:
        """The connected PyDrive2 GoogleDrive, with an access token good for a while."""
        with self._lock:
            if self._drive is None:
                self.connect()
            elif self._expires_soon():
                self._refresh_credentials()
            return self._drive

    def _http(self) -> Any:
        """This thread's authorized httplib2 object, the one PyDrive2 itself uses here."""
        local = self._gauth.thread_local
        if getattr(local, "http", None) is None:
            local.http = self._gauth.Get_Http_Object()
        return local.http

    # ---------------------------------------------------------- retry policy

    def _execute(self, request: Any) -> Any:
        """Send one API request; googleapiclient itself retries what is transient (5xx, 429,
        rate-limit 403s, dropped connections) with its randomized exponential backoff."""
        return request.execute(http=self._http(), num_retries=self._settings.retries)

    def _call(self, operation: str, action: Callable[[], _T], denied: str) -> _T:
        """Run ``action`` with fresh credentials; a failure becomes the DriveError that
        names its cause (the retries happen inside googleapiclient).

        ``denied`` completes "the configured credentials ..." when Drive answers 403 or 404.
        """
        self._ready()
        try:
            return action()
        except Exception as exc:
            error = self._classified(operation, exc, denied)
            if error is None:
                raise
            raise error from exc

    def _classified(self, operation: str, exc: Exception, denied: str) -> DriveError | None:
        """The DriveError for a failure googleapiclient gave up on; None when ``exc`` is not
        a Drive failure at all."""
        failure = _classify(exc)
        if failure is None:
            return None
        attempts = self._settings.retries + 1 if failure.retryable else 1
        return self._as_drive_error(operation, failure, denied, attempts)

    def _after_failure(self, operation: str, exc: Exception, attempt: int, denied: str) -> None:
        """Re-raise unknown errors, raise a DriveError when giving up, else wait to retry."""
        failure = _classify(exc)
        if failure is None:
            raise exc
        if not failure.retryable or attempt > self._settings.retries:
            raise self._as_drive_error(operation, failure, denied, attempt) from exc
        delay = min(self._settings.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S)
        delay *= random.uniform(0.5, 1.5)
        _logger.warning(
            "Drive %s: %s; retry %d of %d in %.1f s",
            operation,
            failure.reason or failure.message,
            attempt,
            self._settings.retries,
            delay,
        )
        time.sleep(delay)

    def _as_drive_error(
        self, operation: str, failure: _Failure, denied: str, attempts: int
    ) -> DriveError:
        """A failure as the error that names its cause; Google's own message always comes
        along, since it often says exactly what to do (and where)."""
        status, reason, said = failure.status, failure.reason, failure.message
        if failure.auth or status == 401:
            return DriveAuthError(self._auth_setting(), f"Google refused the credentials ({said})")
        if reason == "accessNotConfigured":
            return DriveSetupError(
                operation, f"the Drive API is not enabled for this Google Cloud project: {said}"
            )
        if reason == "insufficientPermissions":
            return DriveAuthError(
                self._auth_setting(),
                f"the credentials were not granted access to Drive (its scope): {said}",
            )
        if reason == "storageQuotaExceeded" and "service accounts" in said.lower():
            return DriveSetupError(
                operation, f"{SERVICE_ACCOUNT_STORAGE} (Google said: {said})", status
            )
        if reason == "downloadQuotaExceeded":
            return DriveQuotaError(
                operation,
                "the file was downloaded too often recently: try again in 24 hours, or make a "
                f"copy of it in your own Drive and share the copy (Google said: {said})",
                status,
            )
        if reason in _QUOTA_REASONS or status == 429:
            return DriveQuotaError(operation, f"{reason or 'rateLimitExceeded'}: {said}", status)
        if reason == "fileNotDownloadable":
            return DriveError(operation, _NATIVE_DOC_MESSAGE, status)
        if reason in ("notFound", "insufficientFilePermissions") or (status == 404 and not reason):
            detail = f"{reason or 'notFound'}: {said}"
            hint = f"; share it with {self.account}" if self.account else ""
            text = f"the configured credentials {denied} ({detail}){hint}"
            return DrivePermissionError(
                operation, text, status, detail=detail, share_with=self.account
            )
        if failure.retryable:
            return DriveError(operation, f"{said}; gave up after {attempts} attempts", status)
        return DriveError(operation, f"{said} ({reason or f'HTTP {status}'})", status)

    # ------------------------------------------------------------ metadata

    def get(self, file_id: str, resource_key: str | None = None) -> DriveFile:
        """Metadata of a file or folder; DrivePermissionError when the credentials cannot
        read it. ``resource_key`` opens files shared by a link that carries one."""

        def fetch() -> DriveFile:
            request = self._gauth.service.files().get(fileId=file_id, supportsAllDrives=True)
            if resource_key:
                request.headers[RESOURCE_KEYS_HEADER] = f"{file_id}/{resource_key}"
            return DriveFile.from_metadata(self._execute(request))

        return self._call("get", fetch, f"cannot read {file_id}")

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

    def find(self, title: str, parent_id: str) -> DriveFile | None:
        """The first item titled ``title`` directly inside ``parent_id``, if any."""
        return self._find(title, parent_id, None)

    def _find(self, title: str, parent_id: str, folders: bool | None) -> DriveFile | None:
        query = f"title = {_quote(title)} and {_quote(parent_id)} in parents and trashed = false"
        if folders is not None:
            query += f" and mimeType {'=' if folders else '!='} {_quote(FOLDER_MIME)}"
        found = self._list(query, parent_id)
        return found[0] if found else None

    def _list(self, query: str, folder_id: str, resource_key: str | None = None) -> list[DriveFile]:
        def fetch() -> list[DriveFile]:
            files = self._gauth.service.files()
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
                page = self._execute(request)
                found.extend(DriveFile.from_metadata(item) for item in page.get("items", []))
                token = page.get("nextPageToken")
                if not token:
                    return found

        return self._call("list", fetch, f"cannot read folder {folder_id}")

    def ensure_folder(self, title: str, parent_id: str) -> DriveFile:
        """The folder titled ``title`` inside ``parent_id`` (``root`` for My Drive), created if
        missing."""

        def find_or_create() -> DriveFile:
            existing = self._find(title, parent_id, folders=True)
            if existing is not None:
                return existing
            body = {"title": title, "mimeType": FOLDER_MIME, "parents": [{"id": parent_id}]}
            request = self._gauth.service.files().insert(body=body, supportsAllDrives=True)
            return DriveFile.from_metadata(self._execute(request))

        with self._folder_lock:
            return self._call("create folder", find_or_create, f"cannot write to {parent_id}")

    def share_anyone(self, file_id: str, role: Literal["reader", "writer"] = "reader") -> DriveFile:
        """Let anyone with the link open the file (not listed publicly); returns its metadata,
        whose ``view_link``/``download_link`` can then be handed out."""

        def share() -> DriveFile:
            service = self._gauth.service
            permission = {"type": "anyone", "value": "anyone", "role": role, "withLink": True}
            self._execute(
                service.permissions().insert(
                    fileId=file_id, body=permission, supportsAllDrives=True
                )
            )
            request = service.files().get(fileId=file_id, supportsAllDrives=True)
            return DriveFile.from_metadata(self._execute(request))

        return self._call("share", share, f"cannot share {file_id}")

    def delete(self, file_id: str) -> None:
        """Delete permanently (a folder with its contents); an id already gone is not an error."""

        def remove() -> None:
            self._execute(
                self._gauth.service.files().delete(fileId=file_id, supportsAllDrives=True)
            )

        try:
            self._call("delete", remove, f"cannot delete {file_id}")
        except DrivePermissionError as error:
            if error.status != 404:
                raise

    def trash(self, file_id: str) -> None:
        """Move a file to the trash: in a shared drive, Content managers may trash files but
        only Managers may delete them for good. An id already gone is not an error."""

        def move() -> None:
            self._execute(self._gauth.service.files().trash(fileId=file_id, supportsAllDrives=True))

        try:
            self._call("trash", move, f"cannot move {file_id} to the trash")
        except DrivePermissionError as error:
            if error.status != 404:
                raise

    # ------------------------------------------------------------------ upload

    def upload(
        self,
        path: Path,
        parent_id: str,
        title: str | None = None,
        progress: Progress | None = None,
    ) -> DriveFile:
        """Upload a local file into a folder in ``chunk_mb`` chunks, as ``title`` (default: the
        file's name). A file with that title already there gets the new content as a new
        revision, keeping its id and links, rather than a duplicate beside it.

        Failed chunks are retried with backoff, resuming from the offset Drive acknowledged; an
        expired upload session is started over once. Nothing appears in the folder unless the
        upload completes.
        """
        try:
            return self._upload(path, parent_id, title or path.name, progress)
        except OSError as error:
            raise DriveError("upload", f"cannot read {path}: {error.strerror or error}") from None

    def _upload(
        self, path: Path, parent_id: str, name: str, progress: Progress | None
    ) -> DriveFile:
        size = path.stat().st_size
        existing = self._find(name, parent_id, folders=False)
        mime_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        with path.open("rb") as stream:
            media = _ChunkedFile(
                stream, mimetype=mime_type, chunksize=self._settings.chunk_bytes, resumable=True
            )
            request = self._upload_request(media, name, mime_type, parent_id, existing)
            metadata = self._send_resumable(request, size, progress, f"cannot write to {parent_id}")
        return DriveFile.from_metadata(metadata)

    def _upload_request(
        self,
        media: _ChunkedFile,
        name: str,
        mime_type: str,
        parent_id: str,
        existing: DriveFile | None,
    ) -> Any:
        files = self._gauth.service.files()
        body: dict[str, Any] = {"title": name, "mimeType": mime_type}
        if existing is not None:
            return files.update(
                fileId=existing.id, body=body, media_body=media, supportsAllDrives=True
            )
        body["parents"] = [{"id": parent_id}]
        return files.insert(body=body, media_body=media, supportsAllDrives=True)

    def _send_resumable(
        self, request: Any, total: int, progress: Progress | None, denied: str
    ) -> Mapping[str, Any]:
        # googleapiclient retries a refused chunk itself (num_retries). After a connection
        # broke, it marks the request as in error: its next next_chunk() first asks the session
        # how much arrived (Content-Range: bytes */TOTAL) and resends only from there.
        report = _ProgressReporter(progress, total)
        report(0)
        attempt = 0
        restarted = False
        while True:
            attempt += 1
            self._ready()
            try:
                status, body = request.next_chunk(
                    http=self._http(), num_retries=self._settings.retries
                )
            except Exception as exc:
                if not restarted and _session_expired(exc, request):
                    restarted = True
                    request.resumable_uri = None
                    request.resumable_progress = 0
                    continue
                error = self._classified("upload", exc, denied)
                if isinstance(exc, HttpError) and error is not None:
                    # An answer googleapiclient already retried as far as it was worth it.
                    raise error from exc
                self._after_failure("upload", exc, attempt, denied)
                continue
            if body is not None:
                report(total)
                return dict(body)
            attempt = 0
            report(int(status.resumable_progress))

    # ---------------------------------------------------------------- download

    def download(
        self,
        file_id: str,
        dest: Path,
        progress: Progress | None = None,
        *,
        resource_key: str | None = None,
    ) -> Path:
        """Download a file to ``dest``, resuming an earlier partial download of it.

        Bytes go to ``dest`` + ``.part`` in ``chunk_mb`` ranges and are renamed into place once
        the size and MD5 that Drive reports match. Google Docs files raise a DriveError.
        """
        return self._download(self.get(file_id, resource_key), dest, progress)

    def download_item(
        self,
        item: DriveFile,
        dest: Path,
        progress: Progress | None = None,
        *,
        max_bytes: int | None = None,
    ) -> Path:
        """:meth:`download` for metadata already fetched (its resource key included).

        A file over ``max_bytes`` (as Drive reports it, or as its bytes arrive) is refused
        with a DriveError and nothing of it is kept.
        """
        return self._download(item, dest, progress, max_bytes)

    def export(self, item: DriveFile, mime_type: str, dest: Path) -> Path:
        """A Google Docs/Sheets file exported as ``mime_type`` (Drive exports at most 10 MB)."""
        links = dict(item.export_links)
        url = links.get(mime_type)
        if url is None:
            offered = ", ".join(sorted(links)) or "none"
            raise DriveError(
                "export", f"{item.title} cannot be exported as {mime_type} ({offered})"
            )

        def fetch() -> bytes:
            request = HttpRequest(
                self._http(), lambda _response, content: content, url, method="GET"
            )
            request.headers.update(self._key_headers(item))
            return bytes(self._execute(request))

        data = self._call("export", fetch, f"cannot read {item.id}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        return dest

    @staticmethod
    def _key_headers(item: DriveFile) -> dict[str, str]:
        """The resource-key header a link-shared file needs on every request."""
        if item.resource_key:
            return {RESOURCE_KEYS_HEADER: f"{item.id}/{item.resource_key}"}
        return {}

    def _download(
        self, item: DriveFile, dest: Path, progress: Progress | None, max_bytes: int | None = None
    ) -> Path:
        try:
            return self._download_to(item, dest, progress, max_bytes)
        except OSError as error:
            raise DriveError(
                "download", f"cannot write {dest}: {error.strerror or error}"
            ) from None

    def _download_to(
        self, item: DriveFile, dest: Path, progress: Progress | None, max_bytes: int | None
    ) -> Path:
        if item.is_folder:
            raise DriveError("download", f"{item.title} is a folder; use download_folder")
        if item.is_google_doc:
            raise DriveError("download", f"{item.title}: {_NATIVE_DOC_MESSAGE}")
        if max_bytes is not None and item.size is not None and item.size > max_bytes:
            raise DriveError("download", _over_limit(item, item.size, max_bytes))
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_suffix(dest.suffix + ".part")
        resumed = self._fetch_ranges(item, part, progress, max_bytes)
        if resumed and not _matches(part, item):
            # The partial file came from an older version of the file: start over once.
            part.unlink()
            self._fetch_ranges(item, part, progress, max_bytes)
        self._verify(part, item)
        part.replace(dest)
        return dest

    def _fetch_ranges(
        self, item: DriveFile, part: Path, progress: Progress | None, max_bytes: int | None = None
    ) -> bool:
        """Append the missing ranges to ``part``; True when it started from earlier bytes.
        More than ``max_bytes`` in all removes ``part`` and raises a DriveError."""
        start = _resume_offset(part, item.size)
        self._ready()
        url = self._media_url(item.id)
        report = _ProgressReporter(progress, item.size or 0)
        report(start)
        offset, total = start, item.size
        with part.open("ab") as out:
            while total is None or offset < total:
                chunk = self._fetch_chunk(url, offset, item)
                if chunk is None:
                    break
                data, total = chunk
                if max_bytes is not None and offset + len(data) > max_bytes:
                    out.close()
                    part.unlink(missing_ok=True)
                    raise DriveError("download", _over_limit(item, None, max_bytes))
                out.write(data)
                out.flush()
                offset += len(data)
                report(offset)
                if not data:
                    break
        return start > 0

    def _media_url(self, file_id: str) -> str:
        request = self._gauth.service.files().get_media(fileId=file_id, supportsAllDrives=True)
        return str(request.uri)

    def _fetch_chunk(
        self, url: str, offset: int, item: DriveFile
    ) -> tuple[bytes, int | None] | None:
        """One ranged GET: (bytes, total size), or None past the end."""
        last = offset + self._settings.chunk_bytes - 1
        headers = {"Range": f"bytes={offset}-{last}", **self._key_headers(item)}
        attempt = 0
        while True:
            attempt += 1
            self._ready()
            try:
                response, content = self._http().request(url, "GET", headers=headers)
                if response.status == 416:
                    return None
                if response.status >= 300:
                    raise HttpError(response, content, uri=url)
                return _checked_range(response, bytes(content), offset)
            except Exception as exc:
                self._after_failure("download", exc, attempt, f"cannot read {item.id}")

    def _verify(self, part: Path, item: DriveFile) -> None:
        actual = part.stat().st_size
        if item.size is not None and actual != item.size:
            part.unlink()
            raise DriveError(
                "download", f"{item.title}: got {actual} bytes, Drive reports {item.size}"
            )
        if item.md5 is not None and _md5(part) != item.md5:
            part.unlink()
            raise DriveError(
                "download", f"{item.title}: the MD5 checksum does not match; try again"
            )

    def download_folder(
        self,
        folder_id: str,
        dest_dir: Path,
        progress: Progress | None = None,
        *,
        max_bytes: int | None = None,
        resource_key: str | None = None,
    ) -> list[Path]:
        """Download a folder tree into ``dest_dir``, keeping its sub-folders.

        Titles are made safe as file names (no separators, no ``..``), duplicates get a
        `` (2)`` suffix, and Google Docs files are skipped with a warning. ``progress`` counts
        bytes over the whole tree. A tree larger than ``max_bytes`` is refused before anything
        is downloaded. Returns the downloaded files' paths.
        """
        plan = self._plan_folder(folder_id, Path(), set(), resource_key)
        total = sum(item.size or 0 for item, _ in plan)
        if max_bytes is not None and total > max_bytes:
            raise DriveError(
                "download",
                f"the folder holds {total / 2**20:.1f} MB, more than inputs.max_download_mb "
                f"({max_bytes / 2**20:.0f} MB)",
            )
        root = dest_dir.resolve()
        _make_dir(root)
        overall = _ProgressReporter(progress, total)
        done = 0
        paths: list[Path] = []
        for item, relative in plan:
            target = _inside(root, relative)
            if item.is_folder:
                _make_dir(target)
                continue
            # What Drive reports may be missing or wrong: the bytes count as they arrive.
            left = None if max_bytes is None else max_bytes - done
            self._download(item, target, _offset_progress(overall, done), left)
            done += item.size or target.stat().st_size
            paths.append(target)
        return paths

    def _plan_folder(
        self, folder_id: str, relative: Path, seen: set[str], resource_key: str | None = None
    ) -> list[tuple[DriveFile, Path]]:
        if folder_id in seen:
            return []
        seen.add(folder_id)
        used: set[str] = set()
        plan: list[tuple[DriveFile, Path]] = []
        for listed in self.list_folder(folder_id, resource_key):
            item = self.resolve(listed.id, listed.resource_key) if listed.is_shortcut else listed
            if item.is_shortcut:
                continue  # a shortcut to nothing that can be read
            if item.is_google_doc:
                _logger.warning(
                    "Skipping %r: Google Docs files have no bytes to download", item.title
                )
                continue
            path = relative / unique_name(safe_name(item.title, "_"), used)
            plan.append((item, path))
            if item.is_folder:
                plan.extend(self._plan_folder(item.id, path, seen, item.resource_key))
        return plan


_NATIVE_DOC_MESSAGE = (
    "this is a Google Docs/Sheets/Slides file, which has no file content to download; "
    "export it (File > Download) and share the exported file instead"
)


def _over_limit(item: DriveFile, size: int | None, max_bytes: int) -> str:
    """Why a file is not downloaded: it is (or its bytes grew) larger than what is left."""
    mb = 2**20
    if size is None:
        return (
            f"{item.title} is over {max_bytes / mb:.1f} MB, the most inputs.max_download_mb "
            "leaves for it"
        )
    return (
        f"{item.title} is {size / mb:.1f} MB; inputs.max_download_mb leaves "
        f"{max_bytes / mb:.1f} MB for it"
    )


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DriveError("download", f"cannot create {path}: {error.strerror}") from None


def _inside(root: Path, relative: Path) -> Path:
    try:
        return join_inside(root, relative)
    except Refused as exc:
        raise DriveError(
            "download", f"refusing to write outside {root}: {relative} ({exc.reason})"
        ) from None


def _offset_progress(overall: _ProgressReporter, base: int) -> Progress:
    """A per-file progress callback feeding the whole tree's reporter."""

    def report(done: int, _size: int) -> None:
        overall(base + done)

    return report


def _classify(exc: BaseException) -> _Failure | None:
    """Reduce a library or transport exception to a _Failure; None for anything else."""
    if isinstance(exc, ApiRequestError) and isinstance(exc.args[0], HttpError):
        return _classify(exc.args[0])
    if isinstance(exc, HttpError):
        return _http_failure(int(exc.resp.status), exc.content)
    if isinstance(exc, ValueError):
        # PyDrive2's ApiRequestError parses every error body as JSON, so a proxy's HTML page
        # surfaces as a JSON decoding error raised while handling the real HttpError.
        handled = _handled_http_error(exc)
        return _classify(handled) if handled is not None else None
    if isinstance(exc, AccessTokenRefreshError):
        status = getattr(exc, "status", None)
        retryable = isinstance(status, int) and status >= 500
        return _Failure(status, "tokenRefresh", str(exc), retryable, auth=not retryable)
    if isinstance(exc, AuthError | InvalidConfigError):
        return _Failure(
            None, "authError", "the access token expired and cannot be renewed", False, True
        )
    if _is_network_error(exc):
        return _Failure(None, "", f"connection failed ({type(exc).__name__})", True)
    return None


def _session_expired(exc: BaseException, request: Any) -> bool:
    """Whether the resumable session must be started again: Google's guide says so for any
    4xx from the session URL (it expired, or was refused), except a timeout or a slow-down."""
    if request.resumable_uri is None or not isinstance(exc, HttpError):
        return False
    status = int(exc.resp.status)
    reason, _ = _error_details(exc.content)
    return 400 <= status < 500 and status not in (401, 408, 429) and reason not in _RATE_REASONS


def _handled_http_error(exc: BaseException) -> HttpError | None:
    """The HttpError being handled when ``exc`` was raised, if any."""
    context = exc.__context__
    for _ in range(5):
        if context is None or isinstance(context, HttpError):
            return context
        context = context.__context__
    return None


def _is_network_error(exc: BaseException) -> bool:
    transport = (
        ConnectionError,
        TimeoutError,
        ssl.SSLError,
        http.client.HTTPException,
        httplib2.HttpLib2Error,
    )
    if isinstance(exc, transport):
        return True
    return isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS


def _http_failure(status: int, content: bytes | str | None) -> _Failure:
    reason, message = _error_details(content)
    message = message or f"HTTP {status}"
    retryable = status >= 500 or status in (408, 429) or (status == 403 and reason in _RATE_REASONS)
    return _Failure(status, reason, message, retryable)


def _error_details(content: bytes | str | None) -> tuple[str, str]:
    """(reason, message) from a Google error body; empty strings when it is not one."""
    try:
        error = json.loads(content or b"")["error"]
        details = error.get("errors") or [{}]
        return str(details[0].get("reason", "")), str(error.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return "", ""


def _checked_range(response: Any, content: bytes, offset: int) -> tuple[bytes, int | None]:
    """The body of a ranged GET and the total size it reports."""
    if response.status == 200:
        return content[offset:], len(content)
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", str(response.get("content-range", "")))
    if match is None or int(match.group(1)) != offset:
        raise DriveError("download", "Drive answered with a different byte range than asked for")
    total = match.group(2)
    return content, int(total) if total != "*" else None


def _resume_offset(part: Path, size: int | None) -> int:
    try:
        have = part.stat().st_size
    except FileNotFoundError:
        return 0
    if size is not None and have > size:
        part.unlink()
        return 0
    return have


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        for piece in iter(lambda: stream.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def _matches(part: Path, item: DriveFile) -> bool:
    if item.size is not None and part.stat().st_size != item.size:
        return False
    return item.md5 is None or _md5(part) == item.md5


def _quote(value: str) -> str:
    """A Drive query string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _optional_str(value: Any) -> str | None:
    return str(value) if value is not None else None


def _read_json_file(path: Path | None, setting: str) -> dict[str, Any]:
    if path is None:
        raise DriveAuthError(setting, "is not set")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise DriveAuthError(setting, f"cannot read {path}: {error.strerror}") from None
    except ValueError:
        raise DriveAuthError(setting, f"{path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise DriveAuthError(setting, f"{path} is not a JSON object")
    return data


def _colab_credentials() -> Any:
    try:
        from google.colab import auth as colab_auth
    except ImportError:
        raise DriveAuthError(
            "drive.auth",
            "'colab' works only inside a Google Colab notebook; "
            "elsewhere use 'service_account' or 'oauth_token_file'",
        ) from None
    try:
        colab_auth.authenticate_user()
        credentials = GoogleCredentials.get_application_default()
    except Exception as error:
        raise DriveAuthError(
            "drive.auth", f"Colab sign-in did not complete ({type(error).__name__})"
        ) from None
    if credentials.create_scoped_required():
        credentials = credentials.create_scoped([DRIVE_SCOPE])
    return credentials


def _pydrive_settings() -> dict[str, Any]:
    # No client config on purpose: if PyDrive2 ever found the token expired on its own, it
    # would start its interactive browser sign-in; without a client config it fails instead.
    return {
        "client_config_backend": "service",
        "service_config": {},
        "save_credentials": False,
        "oauth_scope": [DRIVE_SCOPE],
    }


def _warn_about_scopes(scopes: Any, path: Path | None) -> None:
    """A token whose scopes name no Drive scope will be refused by Drive: say so now."""
    if scopes is None:
        return
    granted = scopes.split() if isinstance(scopes, str) else [str(s) for s in scopes]
    if not any(scope in DRIVE_SCOPES for scope in granted):
        _logger.warning(
            "drive.token_file %s grants %s, none of them a Drive scope (%s): Drive will refuse "
            "it; sign in again asking for the Drive scope",
            path,
            ", ".join(granted) or "no scopes",
            DRIVE_SCOPES[0],
        )
