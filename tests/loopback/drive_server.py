"""A loopback Google Drive v2 server for tests and benchmarks.

It speaks the parts of the Drive v2 REST API and Google's OAuth2 token endpoint that PyDrive2,
googleapiclient and ``workers.drive.client`` use, over plain HTTP on 127.0.0.1, from a background
thread with its own event loop, so synchronous clients can call it from the test thread::

    with DriveServer(tmp_path) as srv:
        key_file = srv.new_service_account(tmp_path / "sa.json")
        ...  # point the client at srv.url

It is also the metadata server Colab's sign-in hands tokens out from (``USE_AUTH_EPHEM=1``):
after ``srv.new_colab_user(email)``, oauth2client's GCE credentials pointed at
``srv.metadata_host`` (``GCE_METADATA_IP`` and ``GCE_METADATA_ROOT``) act as that person.

Faults can be injected (error statuses, connections dropped mid-upload or mid-download) and
everything the server saw is counted, so tests and benchmarks can measure bytes re-sent.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

FOLDER_MIME = "application/vnd.google-apps.folder"
SHORTCUT_MIME = "application/vnd.google-apps.shortcut"
DOCUMENT_MIME = "application/vnd.google-apps.document"
SPREADSHEET_MIME = "application/vnd.google-apps.spreadsheet"
SERVICE_ACCOUNT_DOMAIN = ".iam.gserviceaccount.com"
RESOURCE_KEYS_HEADER = "X-Goog-Drive-Resource-Keys"
# Roles in a shared drive, weakest first (the API's names for Viewer ... Manager).
DRIVE_ROLES = ("reader", "commenter", "writer", "fileOrganizer", "organizer")
EXPORTS = {
    DOCUMENT_MIME: ("text/plain", "application/pdf"),
    SPREADSHEET_MIME: ("text/csv", "application/pdf"),
}
GOOGLE_APPS_PREFIX = "application/vnd.google-apps."
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_ACCOUNT = "colabot-test@colabot-tests.iam.gserviceaccount.com"
DEFAULT_PERSON = "person@example.com"
DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"
BROWSER_EXPORT_ROOT = "https://docs.google.com.invalid/"
"""Where the ``exportLinks`` of Docs point. Real Drive points them at docs.google.com, a host
other than the API's (they are for browsers); here the reserved ``.invalid`` domain makes a
client that follows them fail instead of reaching Google."""
# The exportFormat each export MIME type has in an exportLinks URL.
_EXPORT_FORMATS = {"text/plain": "txt", "text/csv": "csv", "application/pdf": "pdf"}

_READ_PIECE = 64 * 1024
_REASON_MESSAGES = {
    "backendError": "Backend Error",
    "internalError": "Internal Error",
    "rateLimitExceeded": "Rate Limit Exceeded",
    "userRateLimitExceeded": "User Rate Limit Exceeded",
    "storageQuotaExceeded": "The user's Drive storage quota has been exceeded.",
    "publishOutNotPermitted": 'Bad Request. User message: ""',
    "forbidden": "Forbidden",
    "notFound": "Not Found",
    "accessNotConfigured": (
        "Google Drive API has not been used in project 123456789012 before or it is disabled. "
        "Enable it by visiting https://console.developers.google.com/apis/api/"
        "drive.googleapis.com/overview?project=123456789012 then retry. If you enabled this API "
        "recently, wait a few minutes for the action to propagate to our systems and retry."
    ),
    "insufficientPermissions": "Request had insufficient authentication scopes.",
    "downloadQuotaExceeded": (
        "The download quota for this file has been exceeded. You can't download this file at "
        "this time. Please try again later."
    ),
}
SERVICE_ACCOUNT_QUOTA = (
    "Service Accounts do not have storage quota. Leverage shared drives "
    "(https://developers.google.com/workspace/drive/api/guides/about-shareddrives), or use "
    "OAuth delegation (http://support.google.com/a/answer/7281227) instead."
)
_DEFAULT_REASONS = {500: "backendError", 502: "backendError", 503: "backendError"}
_USAGE_LIMIT_REASONS = {
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "storageQuotaExceeded",
    "accessNotConfigured",
    "downloadQuotaExceeded",
}


def _now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _new_id() -> str:
    return "1" + secrets.token_urlsafe(24)


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class StoredFile:
    """One file or folder as the server holds it."""

    id: str
    title: str
    mime_type: str
    parents: list[str]
    owner: str
    created: str
    modified: str
    trashed: bool = False
    size: int | None = None
    md5: str | None = None
    blob: Path | None = None
    shared: bool = False
    permissions: list[dict[str, Any]] = field(default_factory=list)
    drive_id: str | None = None
    resource_key: str | None = None
    shortcut_target: str | None = None
    text: str | None = None
    """For Google Docs and Sheets: the text they export."""

    @property
    def is_folder(self) -> bool:
        """Whether this is a folder."""
        return self.mime_type == FOLDER_MIME

    @property
    def has_content(self) -> bool:
        """Whether the file has downloadable bytes (not a folder or a Google Docs file)."""
        return not self.mime_type.startswith(GOOGLE_APPS_PREFIX)


@dataclass
class SharedDrive:
    """A shared drive: its members' roles decide what they may do with the files in it;
    ``domain_users_only`` is the Workspace policy that keeps its files inside the
    organisation (Drive's ``restrictions.domainUsersOnly``)."""

    id: str
    name: str
    members: dict[str, str]
    domain_users_only: bool = False


@dataclass
class UploadSession:
    """A resumable upload; it becomes a file only when its last byte arrives."""

    id: str
    metadata: dict[str, Any]
    target_id: str | None
    total: int | None
    mime_type: str
    path: Path
    owner: str
    committed: int = 0
    bytes_received: int = 0
    chunk_requests: int = 0
    file_id: str | None = None
    cancelled: bool = False


@dataclass
class RequestRecord:
    """One request the server saw; ``status`` is None when the connection was dropped."""

    method: str
    path: str
    query: dict[str, str]
    content_range: str | None
    range: str | None
    received_bytes: int = 0
    status: int | None = None
    fault: str | None = None


@dataclass
class _Fault:
    name: str
    matches: Callable[[web.Request], bool]
    remaining: int
    status: int = 0
    reason: str | None = None
    raw_body: str | None = None
    after_bytes: int = 0


@dataclass
class _Token:
    principal: str
    expires_at: float


_RECORD = web.RequestKey("record", RequestRecord)
_PRINCIPAL = web.RequestKey("principal", str)
_DROPPED = web.RequestKey("dropped", bool)


class _ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str, domain: str = "global") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.domain = domain


def google_error(status: int, reason: str, message: str, domain: str = "global") -> web.Response:
    """An error response shaped like the ones Google's APIs send."""
    payload = {
        "error": {
            "errors": [{"domain": domain, "reason": reason, "message": message}],
            "code": status,
            "message": message,
        }
    }
    return web.json_response(payload, status=status)


def write_service_account_key(path: Path, email: str = DEFAULT_ACCOUNT) -> bytes:
    """Write a throwaway service-account JSON key to ``path``; returns its public key (PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    key_file = {
        "type": "service_account",
        "project_id": "colabot-tests",
        "private_key_id": secrets.token_hex(20),
        "private_key": private_pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)),
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path.write_text(json.dumps(key_file))
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None] | None:
    """``bytes S-E/T`` -> (S, E, T); ``bytes */T`` -> (None, None, T); T may be ``*``."""
    if value is None:
        return None
    match = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", value.strip())
    if match is None:
        raise _ApiError(400, "badContentRange", f"Invalid Content-Range: {value}")
    start, end, total = match.groups()
    return (
        int(start) if start is not None else None,
        int(end) if end is not None else None,
        int(total) if total != "*" else None,
    )


def _parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    if value is None:
        return None
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", value.strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        length = int(last)
        return max(size - length, 0), size - 1
    end = int(last) if last else size - 1
    return int(first), min(end, size - 1)


def _tokenize_query(q: str) -> list[str]:
    tokens: list[str] = []
    pattern = re.compile(r"\s*(?:('(?:[^'\\]|\\.)*')|(!=|=)|([A-Za-z_]+))")
    pos = 0
    q = q.strip()
    while pos < len(q):
        match = pattern.match(q, pos)
        if match is None or match.end() == pos:
            raise _ApiError(400, "invalid", f"Invalid query: {q}")
        tokens.append(next(group for group in match.groups() if group is not None))
        pos = match.end()
    return tokens


def _unquote(token: str) -> str:
    if len(token) < 2 or token[0] != "'" or token[-1] != "'":
        raise _ApiError(400, "invalid", f"Expected a quoted string, got {token}")
    return re.sub(r"\\(.)", r"\1", token[1:-1])


class DriveServer:
    """A Drive v2 server on 127.0.0.1 for tests: real HTTP, in-memory metadata, bytes on disk."""

    def __init__(self, root: Path, *, host: str = "127.0.0.1") -> None:
        self._dir = Path(root) / "drive-server"
        self._blobs = self._dir / "blobs"
        self._uploads = self._dir / "uploads"
        self._host = host
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._files: dict[str, StoredFile] = {}
        self._sessions: dict[str, UploadSession] = {}
        self._faults: list[_Fault] = []
        self._drops: list[_Fault] = []
        self._requests: list[RequestRecord] = []
        self._tokens: dict[str, _Token] = {}
        self._service_accounts: dict[str, rsa.RSAPublicKey] = {}
        self._refresh_tokens: dict[str, tuple[str, str, str]] = {}
        self._expired_refresh_tokens: set[str] = set()
        self._colab_user: str | None = None
        self._denied: dict[str, int] = {}
        self._drives: dict[str, SharedDrive] = {}
        self._token_grants = 0
        self._download_bytes_sent = 0
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.token_lifetime_s = 3600
        """How long issued access tokens live (and the ``expires_in`` the server reports)."""
        self.quota_bytes: int | None = None
        """Storage quota for all files together; None means unlimited."""
        self.max_page_size = 1000
        """Cap on files.list page size, to exercise paging with few files."""
        self.root_id = _new_id()
        now = _now_rfc3339()
        self._files[self.root_id] = StoredFile(
            self.root_id, "My Drive", FOLDER_MIME, [], DEFAULT_ACCOUNT, now, now
        )

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> DriveServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL with a trailing slash, e.g. ``http://127.0.0.1:PORT/``."""
        return f"http://{self._host}:{self._port}/"

    @property
    def token_url(self) -> str:
        """The OAuth2 token endpoint."""
        return self.url + "token"

    @property
    def metadata_host(self) -> str:
        """``HOST:PORT`` of the metadata server (no scheme), as ``GCE_METADATA_IP`` and
        ``GCE_METADATA_ROOT`` take it."""
        return f"{self._host}:{self._port}"

    def start(self) -> None:
        """Start serving from a background thread; returns once the socket listens."""
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._uploads.mkdir(parents=True, exist_ok=True)
        sock = socket.create_server((self._host, 0))
        self._port = sock.getsockname()[1]
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(sock, started), name="drive-server", daemon=True
        )
        self._thread.start()
        if not started.wait(timeout=10):
            raise RuntimeError("the loopback Drive server did not start")

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop = None
        self._thread = None

    def _serve(self, sock: socket.socket, started: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        runner = web.AppRunner(self._build_app(), access_log=None, shutdown_timeout=1.0)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, sock).start())
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=1 << 30)
        route = app.router
        route.add_post("/token", self._token)
        route.add_get("/", self._metadata)
        route.add_get("/computeMetadata/v1/{tail:.*}", self._metadata)
        route.add_get("/drive/v2/about", self._about)
        route.add_get("/drive/v2/files", self._list)
        route.add_post("/drive/v2/files", self._insert)
        route.add_get("/drive/v2/files/{file_id}", self._get)
        route.add_get("/drive/v2/files/{file_id}/export", self._export)
        route.add_put("/drive/v2/files/{file_id}", self._update)
        route.add_patch("/drive/v2/files/{file_id}", self._update)
        route.add_delete("/drive/v2/files/{file_id}", self._delete)
        route.add_post("/drive/v2/files/{file_id}/trash", self._trash)
        route.add_post("/drive/v2/files/{file_id}/untrash", self._untrash)
        route.add_get("/drive/v2/files/{file_id}/permissions", self._list_permissions)
        route.add_post("/drive/v2/files/{file_id}/permissions", self._insert_permission)
        route.add_route("*", "/upload/drive/v2/files", self._upload)
        route.add_route("*", "/upload/drive/v2/files/{file_id}", self._upload)
        return app

    # --------------------------------------------------------- accounts, tokens

    def trust_service_account(self, email: str, public_key_pem: bytes) -> None:
        """Accept JWT grants for ``email`` signed by the key whose public half is given."""
        key = serialization.load_pem_public_key(public_key_pem)
        if not isinstance(key, rsa.RSAPublicKey):
            raise TypeError("service account keys are RSA keys")
        with self._lock:
            self._service_accounts[email] = key

    def new_service_account(self, path: Path, email: str = DEFAULT_ACCOUNT) -> Path:
        """Write a fresh service-account key file to ``path`` and trust it."""
        self.trust_service_account(email, write_service_account_key(path, email))
        return path

    def issue_refresh_token(self, client_id: str, client_secret: str) -> str:
        """A refresh token for an authorized-user (non-service) login by this OAuth client."""
        token = "1//" + secrets.token_urlsafe(32)
        with self._lock:
            self._refresh_tokens[token] = (client_id, client_secret, DEFAULT_PERSON)
        return token

    def expire_refresh_tokens(self) -> None:
        """Expire every refresh token issued so far, as Google does after 7 days for an OAuth
        app whose publishing status is "Testing": the token endpoint answers ``invalid_grant``
        ("Token has been expired or revoked.")."""
        with self._lock:
            self._expired_refresh_tokens.update(self._refresh_tokens)

    def new_colab_user(self, email: str = DEFAULT_PERSON) -> str:
        """Sign ``email`` in to "Colab": the metadata server hands out access tokens for that
        person, as Colab's does after ``google.colab.auth.authenticate_user()``."""
        with self._lock:
            self._colab_user = email
        return email

    def new_authorized_user(self, path: Path) -> Path:
        """Write an ``authorized_user`` credentials file (as gcloud/Colab do) to ``path``."""
        client_id, client_secret = "colabot-client", "colabot-client-secret"
        token = self.issue_refresh_token(client_id, client_secret)
        data = {
            "type": "authorized_user",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": token,
        }
        path.write_text(json.dumps(data))
        return path

    def revoke_tokens(self) -> None:
        """Invalidate every access token issued so far (refresh tokens stay valid)."""
        with self._lock:
            self._tokens.clear()

    @property
    def token_grants(self) -> int:
        """How many access tokens the token endpoint has issued."""
        with self._lock:
            return self._token_grants

    # ------------------------------------------------------------ seeding state

    def add_folder(
        self, title: str, parent_id: str | None = None, *, resource_key: bool = False
    ) -> str:
        """Create a folder directly (no HTTP); returns its id."""
        file_id = self._create(title, FOLDER_MIME, parent_id, None)
        if resource_key:
            self._files[file_id].resource_key = "0-" + secrets.token_urlsafe(16)
        return file_id

    def add_file(
        self,
        title: str,
        data: bytes = b"",
        parent_id: str | None = None,
        mime_type: str = "application/octet-stream",
        *,
        resource_key: bool = False,
        text: str | None = None,
    ) -> str:
        """Create a file directly (no HTTP); Google Docs mime types get no content, but
        ``text`` to export. ``resource_key``: a file shared by link that older links reach
        only with its resource key (Drive's 2021 security update)."""
        file_id = self._create(title, mime_type, parent_id, data)
        record = self._files[file_id]
        record.text = text
        if resource_key:
            record.resource_key = "0-" + secrets.token_urlsafe(16)
        return file_id

    def add_shortcut(self, title: str, target_id: str, parent_id: str | None = None) -> str:
        """A shortcut to another file, as Drive's "Add shortcut to Drive" makes."""
        file_id = self._create(title, SHORTCUT_MIME, parent_id, None)
        self._files[file_id].shortcut_target = target_id
        return file_id

    def add_shared_drive(
        self, name: str, members: dict[str, str], *, domain_users_only: bool = False
    ) -> str:
        """A shared drive with these members (e-mail -> role: reader, commenter, writer,
        fileOrganizer or organizer); returns its id, which is also its root folder's.
        ``domain_users_only``: its organisation allows no sharing outside it, so sharing a
        file with anyone who has the link is refused (``publishOutNotPermitted``)."""
        drive_id = "0A" + secrets.token_urlsafe(14)
        now = _now_rfc3339()
        with self._lock:
            self._drives[drive_id] = SharedDrive(drive_id, name, dict(members), domain_users_only)
            self._files[drive_id] = StoredFile(
                drive_id, name, FOLDER_MIME, [], "shared drive", now, now, drive_id=drive_id
            )
        return drive_id

    def resource_key(self, file_id: str) -> str | None:
        """The resource key a link to this file carries, if it needs one."""
        return self.file(file_id).resource_key

    def deny(self, file_id: str, status: int = 403) -> None:
        """Make the file unreadable for every caller: 403 (no permission) or 404 (not shared)."""
        with self._lock:
            self._denied[file_id] = status

    def _create(self, title: str, mime_type: str, parent_id: str | None, data: bytes | None) -> str:
        file_id = _new_id()
        now = _now_rfc3339()
        parent = parent_id or self.root_id
        record = StoredFile(file_id, title, mime_type, [parent], DEFAULT_ACCOUNT, now, now)
        record.drive_id = self._files[parent].drive_id if parent in self._files else None
        if data is not None and record.has_content:
            blob = self._blobs / file_id
            blob.write_bytes(data)
            self._set_content(record, blob)
        with self._lock:
            self._files[file_id] = record
            self._changed.notify_all()
        return file_id

    def _set_content(self, record: StoredFile, blob: Path) -> None:
        digest = hashlib.md5(usedforsecurity=False)
        with blob.open("rb") as stream:
            for piece in iter(lambda: stream.read(1 << 20), b""):
                digest.update(piece)
        record.blob = blob
        record.size = blob.stat().st_size
        record.md5 = digest.hexdigest()

    # ---------------------------------------------------------- fault injection

    def fail_next(
        self,
        method: str,
        path: str,
        status: int,
        *,
        count: int = 1,
        reason: str | None = None,
        raw_body: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests whose method matches (``*`` for any) and whose
        path matches the regular expression ``path`` with ``status`` and a Google-shaped error
        (``reason`` e.g. ``storageQuotaExceeded``), or ``raw_body`` verbatim (say an HTML page
        from a proxy). The request body is read first, as a front end would."""
        pattern = re.compile(path)

        def matches(request: web.Request) -> bool:
            return method in ("*", request.method) and pattern.search(request.path) is not None

        self._add_fault(
            _Fault(f"{status} {method} {path}", matches, count, status, reason, raw_body)
        )

    def fail_upload_chunks(self, status: int, *, count: int = 1, reason: str | None = None) -> None:
        """Answer the next ``count`` resumable-upload chunk PUTs (not status queries) with
        ``status``; their bytes are received and thrown away."""
        self._add_fault(_Fault(f"{status} upload chunk", _is_chunk_put, count, status, reason))

    def fail_status_queries(
        self, status: int, *, count: int = 1, reason: str | None = None
    ) -> None:
        """Answer the next ``count`` resumable-upload status queries (an empty PUT with
        ``Content-Range: bytes */TOTAL``, asking how much arrived) with ``status``."""
        self._add_fault(_Fault(f"{status} status query", _is_status_query, count, status, reason))

    def drop_upload_after(self, nbytes: int, *, count: int = 1) -> None:
        """Close the connection of the next ``count`` upload chunks after ``nbytes`` bytes of
        their body arrived; the bytes that arrived are kept, as Google does."""
        fault = _Fault("drop upload", _is_chunk_put, count, after_bytes=nbytes)
        with self._lock:
            self._drops.append(fault)

    def drop_download_after(self, nbytes: int, *, count: int = 1) -> None:
        """Close the connection of the next ``count`` media downloads after ``nbytes`` bytes."""
        fault = _Fault("drop download", _is_media_get, count, after_bytes=nbytes)
        with self._lock:
            self._drops.append(fault)

    def expire_upload_sessions(self) -> None:
        """Forget every unfinished upload session, as Drive does after a week; their next
        request gets a 404."""
        with self._lock:
            for session in self._sessions.values():
                if session.file_id is None:
                    session.cancelled = True

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._faults.clear()
            self._drops.clear()

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take(self, faults: list[_Fault], request: web.Request) -> _Fault | None:
        with self._lock:
            for fault in faults:
                if fault.remaining > 0 and fault.matches(request):
                    fault.remaining -= 1
                    return fault
        return None

    # ---------------------------------------------------------------- inspection

    def file(self, file_id: str) -> StoredFile:
        """A copy of one stored file's record (KeyError if unknown)."""
        with self._lock:
            return _copy_file(self._files[file_id])

    def files(self) -> list[StoredFile]:
        """Copies of every stored record, the root folder included."""
        with self._lock:
            return [_copy_file(record) for record in self._files.values()]

    def children(self, folder_id: str, *, include_trashed: bool = False) -> list[StoredFile]:
        """Copies of the records directly inside ``folder_id``."""
        with self._lock:
            return [
                _copy_file(record)
                for record in self._files.values()
                if folder_id in record.parents and (include_trashed or not record.trashed)
            ]

    def content(self, file_id: str) -> bytes:
        """The bytes stored for a file."""
        blob = self.file(file_id).blob
        if blob is None:
            raise ValueError(f"{file_id} has no content")
        return blob.read_bytes()

    def permissions(self, file_id: str) -> list[dict[str, Any]]:
        """The permissions inserted on a file."""
        return self.file(file_id).permissions

    def sessions(self) -> list[UploadSession]:
        """Copies of every resumable upload session."""
        with self._lock:
            return [dataclasses.replace(session) for session in self._sessions.values()]

    def upload_bytes_received(self, file_id: str) -> int:
        """Body bytes received by every upload session that wrote ``file_id``, dropped and
        rejected chunks included; minus the file size, that is what was sent twice."""
        with self._lock:
            return sum(s.bytes_received for s in self._sessions.values() if s.file_id == file_id)

    @property
    def total_upload_bytes(self) -> int:
        """Body bytes received by all upload sessions, finished or not."""
        with self._lock:
            return sum(session.bytes_received for session in self._sessions.values())

    @property
    def download_bytes_sent(self) -> int:
        """Media bytes written to clients, dropped downloads included."""
        with self._lock:
            return self._download_bytes_sent

    def requests(self) -> list[RequestRecord]:
        """Every request seen so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def wait_for_request(
        self, match: Callable[[RequestRecord], bool], timeout: float = 10.0
    ) -> RequestRecord:
        """Block until a request satisfying ``match`` has been handled (TimeoutError if not)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((r for r in self._requests if match(r)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no matching request reached the Drive server")
                self._changed.wait(left)

    # ---------------------------------------------------------------- middleware

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        record = RequestRecord(
            request.method,
            request.path,
            {key: value for key, value in request.query.items()},
            request.headers.get("Content-Range"),
            request.headers.get("Range"),
        )
        request[_RECORD] = record
        try:
            response = await self._dispatch(request, handler, record)
            if record.status is None and not request.get(_DROPPED):
                record.status = response.status
            return response
        finally:
            with self._changed:
                self._requests.append(record)
                self._changed.notify_all()

    async def _dispatch(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Any],
        record: RequestRecord,
    ) -> web.StreamResponse:
        fault = self._take(self._faults, request)
        if fault is not None:
            record.fault = fault.name
            await self._drain(request)
            if fault.raw_body is not None:
                return web.Response(
                    status=fault.status, text=fault.raw_body, content_type="text/html"
                )
            reason = fault.reason or _DEFAULT_REASONS.get(fault.status, "backendError")
            domain = "usageLimits" if reason in _USAGE_LIMIT_REASONS else "global"
            return google_error(fault.status, reason, _REASON_MESSAGES.get(reason, reason), domain)
        try:
            if request.path != "/token" and not _is_metadata(request):
                self._authenticate(request)
            response: web.StreamResponse = await handler(request)
            return response
        except _ApiError as error:
            await self._drain(request)
            return google_error(error.status, error.reason, error.message, error.domain)

    async def _drain(self, request: web.Request) -> int:
        total = 0
        while piece := await request.content.read(_READ_PIECE):
            total += len(piece)
        self._count_received(request, total)
        return total

    def _count_received(self, request: web.Request, nbytes: int) -> None:
        record: RequestRecord = request[_RECORD]
        with self._lock:
            record.received_bytes += nbytes
            session = self._sessions.get(request.query.get("upload_id", ""))
            if session is not None:
                session.bytes_received += nbytes

    def _authenticate(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip()
        with self._lock:
            grant = self._tokens.get(token)
        if grant is None or grant.expires_at < time.monotonic():
            raise _ApiError(401, "authError", "Invalid Credentials")
        request[_PRINCIPAL] = grant.principal
        return grant.principal

    # --------------------------------------------------------------- OAuth2

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant_type = str(form.get("grant_type", ""))
        if grant_type == JWT_GRANT:
            principal = self._check_assertion(str(form.get("assertion", "")))
        elif grant_type == "refresh_token":
            with self._lock:
                expired = str(form.get("refresh_token", "")) in self._expired_refresh_tokens
            if expired:
                return _oauth_error("invalid_grant", "Token has been expired or revoked.")
            principal = self._check_refresh_token(form)
        else:
            return _oauth_error("unsupported_grant_type", f"Unsupported grant: {grant_type}")
        if principal is None:
            return _oauth_error("invalid_grant", "Invalid grant: the credentials were refused.")
        token = self._mint_token(principal)
        return web.json_response(
            {"access_token": token, "expires_in": self.token_lifetime_s, "token_type": "Bearer"}
        )

    def _mint_token(self, principal: str) -> str:
        token = "ya29." + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = _Token(principal, time.monotonic() + self.token_lifetime_s)
            self._token_grants += 1
        return token

    async def _metadata(self, request: web.Request) -> web.Response:
        """The GCE metadata server as oauth2client asks it: ``GET /`` to detect it, the
        signed-in account's e-mail and scopes, then its access token (by e-mail)."""
        flavor = {"Metadata-Flavor": "Google"}
        if request.headers.get("Metadata-Flavor") != "Google":
            return web.Response(status=403, text="Missing Metadata-Flavor:Google header.")
        if request.path == "/":
            return web.Response(text="computeMetadata/\n", headers=flavor)
        with self._lock:
            email = self._colab_user
        prefix = "/computeMetadata/v1/instance/service-accounts/"
        who, _, leaf = request.path.removeprefix(prefix).partition("/")
        if email is None or not request.path.startswith(prefix) or who not in ("default", email):
            return web.Response(status=404, headers=flavor)
        body: dict[str, Any]
        if leaf == "" and request.query.get("recursive", "").lower() == "true":
            body = {"aliases": ["default"], "email": email, "scopes": [DRIVE_SCOPE]}
        elif leaf == "token":
            body = {
                "access_token": self._mint_token(email),
                "expires_in": self.token_lifetime_s,
                "token_type": "Bearer",
            }
        elif leaf == "email":
            return web.Response(text=email, headers=flavor)
        else:
            return web.Response(status=404, headers=flavor)
        # Exactly "application/json": oauth2client parses the body only then (web.json_response
        # would add "; charset=utf-8").
        return web.Response(
            body=json.dumps(body).encode(), content_type="application/json", headers=flavor
        )

    def _check_assertion(self, assertion: str) -> str | None:
        try:
            header_b64, payload_b64, signature_b64 = assertion.split(".")
            header = json.loads(_b64url_decode(header_b64))
            payload = json.loads(_b64url_decode(payload_b64))
            signature = _b64url_decode(signature_b64)
        except ValueError:
            return None
        email = str(payload.get("iss", ""))
        with self._lock:
            key = self._service_accounts.get(email)
        if key is None or header.get("alg") != "RS256":
            return None
        try:
            key.verify(
                signature,
                f"{header_b64}.{payload_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return None
        if payload.get("aud") != self.token_url or float(payload.get("exp", 0)) < time.time():
            return None
        return email

    def _check_refresh_token(self, form: Any) -> str | None:
        with self._lock:
            known = self._refresh_tokens.get(str(form.get("refresh_token", "")))
        if known is None:
            return None
        client_id, client_secret, principal = known
        if form.get("client_id") != client_id or form.get("client_secret") != client_secret:
            return None
        return principal

    # ---------------------------------------------------------------- resources

    def _resource(self, record: StoredFile) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": "drive#file",
            "id": record.id,
            "title": record.title,
            "mimeType": record.mime_type,
            "labels": {"trashed": record.trashed, "starred": False, "hidden": False},
            "createdDate": record.created,
            "modifiedDate": record.modified,
            "parents": [
                {"kind": "drive#parentReference", "id": p, "isRoot": p == self.root_id}
                for p in record.parents
            ],
            "owners": [{"kind": "drive#user", "emailAddress": record.owner}],
            "shared": record.shared,
            "editable": True,
            "userPermission": {"kind": "drive#permission", "id": "me", "role": "owner"},
        }
        if record.drive_id is not None:
            data["driveId"] = record.drive_id
            del data["owners"]  # files in a shared drive belong to the drive
        if record.resource_key is not None:
            data["resourceKey"] = record.resource_key
        if record.shortcut_target is not None:
            target = self._files.get(record.shortcut_target)
            data["shortcutDetails"] = {
                "targetId": record.shortcut_target,
                "targetMimeType": target.mime_type if target else "",
            }
            if target is not None and target.resource_key:
                data["shortcutDetails"]["targetResourceKey"] = target.resource_key
        if record.is_folder:
            data["alternateLink"] = f"https://drive.google.com/drive/folders/{record.id}"
        elif not record.has_content:
            kind = record.mime_type.removeprefix(GOOGLE_APPS_PREFIX)
            data["alternateLink"] = f"https://docs.google.com/{kind}/d/{record.id}/edit"
            data["exportLinks"] = {
                mime: f"{BROWSER_EXPORT_ROOT}feeds/download/{kind}s/export/Export?id={record.id}"
                f"&exportFormat={_EXPORT_FORMATS[mime]}"
                for mime in EXPORTS.get(record.mime_type, ("application/pdf",))
            }
        else:
            data["alternateLink"] = f"https://drive.google.com/file/d/{record.id}/view?usp=drivesdk"
            data["webContentLink"] = f"https://drive.google.com/uc?id={record.id}&export=download"
            data["downloadUrl"] = f"{self.url}drive/v2/files/{record.id}?alt=media"
            data["fileSize"] = str(record.size or 0)
            data["quotaBytesUsed"] = str(record.size or 0)
            data["md5Checksum"] = record.md5
            data["originalFilename"] = record.title
        return data

    def _lookup(self, file_id: str, request: web.Request | None = None) -> StoredFile:
        """The live record for ``file_id`` (``root`` resolves); caller holds no lock.

        Given the request, Drive's rules for reaching a file apply: a file in a shared drive
        is found only by a client that says it supports shared drives, and only by the
        drive's members; a file that needs a resource key is found only with it.
        """
        resolved = self.root_id if file_id == "root" else file_id
        with self._lock:
            denied = self._denied.get(resolved)
            record = self._files.get(resolved)
        if record is None or denied == 404:
            raise _ApiError(404, "notFound", f"File not found: {file_id}.")
        if request is not None:
            self._check_reach(record, request, file_id)
        if denied is not None:
            raise _ApiError(
                denied,
                "insufficientFilePermissions",
                "The user does not have sufficient permissions for this file.",
            )
        return record

    def _check_reach(self, record: StoredFile, request: web.Request, asked: str) -> None:
        principal = request.get(_PRINCIPAL, "")
        if record.drive_id is not None:
            drive = self._drives.get(record.drive_id)
            # Media downloads go to the URL Drive handed out, which needs no flag of its own.
            all_drives = (
                request.query.get("supportsAllDrives") == "true"
                or request.query.get("alt") == "media"
            )
            if drive is None or not all_drives or principal not in drive.members:
                raise _ApiError(404, "notFound", f"File not found: {asked}.")
        if record.resource_key is not None and record.owner != principal:
            keys = request.headers.get(RESOURCE_KEYS_HEADER, "")
            given = dict(pair.split("/", 1) for pair in keys.split(",") if "/" in pair)
            if given.get(record.id) != record.resource_key:
                raise _ApiError(404, "notFound", f"File not found: {asked}.")

    def _role(self, record: StoredFile, principal: str) -> str | None:
        """The principal's role in the shared drive holding ``record`` (None: not in one)."""
        if record.drive_id is None:
            return None
        drive = self._drives.get(record.drive_id)
        return drive.members.get(principal) if drive is not None else None

    def _require(self, record: StoredFile, principal: str, least: str, what: str) -> None:
        """In a shared drive, refuse a member whose role is below ``least``."""
        role = self._role(record, principal)
        if record.drive_id is None:
            return
        if role is None or DRIVE_ROLES.index(role) < DRIVE_ROLES.index(least):
            raise _ApiError(
                403,
                "insufficientFilePermissions",
                f"The user does not have sufficient permissions for this file ({what} needs "
                f"the {least} role in the shared drive).",
            )

    def _check_storage(self, parents: list[str], principal: str) -> None:
        """A service account owns no storage: it may store content only in a shared drive."""
        if not principal.endswith(SERVICE_ACCOUNT_DOMAIN):
            return
        in_drive = [self._files[p] for p in parents if self._files[p].drive_id is not None]
        if not in_drive:
            raise _ApiError(403, "storageQuotaExceeded", SERVICE_ACCOUNT_QUOTA, "usageLimits")
        for folder in in_drive:
            self._require(folder, principal, "writer", "adding files")

    def _parents_from(
        self, metadata: dict[str, Any], request: web.Request | None = None
    ) -> list[str]:
        parents = [str(p["id"]) for p in metadata.get("parents") or [] if "id" in p]
        resolved = [self._lookup(p, request).id for p in parents] or [self.root_id]
        for parent in resolved:
            if not self._lookup(parent).is_folder:
                raise _ApiError(400, "invalid", f"Parent {parent} is not a folder.")
        return resolved

    def _used_bytes(self) -> int:
        with self._lock:
            return sum(record.size or 0 for record in self._files.values())

    def _check_quota(self, incoming: int) -> None:
        if self.quota_bytes is not None and self._used_bytes() + incoming > self.quota_bytes:
            raise _ApiError(
                403, "storageQuotaExceeded", _REASON_MESSAGES["storageQuotaExceeded"], "usageLimits"
            )

    # ------------------------------------------------------------------ handlers

    async def _about(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "kind": "drive#about",
                "name": request[_PRINCIPAL],
                "user": {"kind": "drive#user", "emailAddress": request[_PRINCIPAL]},
                "rootFolderId": self.root_id,
                "isCurrentAppInstalled": False,
                "quotaBytesTotal": str(self.quota_bytes or 15 * 1024**3),
                "quotaBytesUsed": str(self._used_bytes()),
            }
        )

    async def _list(self, request: web.Request) -> web.Response:
        clauses = self._compile_query(request.query.get("q", ""), request)
        principal = request[_PRINCIPAL]
        all_drives = (
            request.query.get("supportsAllDrives") == "true"
            and request.query.get("includeItemsFromAllDrives") == "true"
        )
        with self._lock:
            hidden = {fid for fid, status in self._denied.items() if status == 404}
            items = [
                record
                for record in self._files.values()
                if record.id != self.root_id
                and record.id not in self._drives
                and record.id not in hidden
                and (record.drive_id is None or (all_drives and self._role(record, principal)))
                and all(clause(record) for clause in clauses)
            ]
        page_size = min(int(request.query.get("maxResults", 100)), self.max_page_size, 1000)
        start = int(request.query.get("pageToken", 0))
        page = items[start : start + page_size]
        body: dict[str, Any] = {
            "kind": "drive#fileList",
            "items": [self._resource(record) for record in page],
        }
        if start + page_size < len(items):
            body["nextPageToken"] = str(start + page_size)
        return web.json_response(body)

    def _compile_query(
        self, q: str, request: web.Request | None = None
    ) -> list[Callable[[StoredFile], bool]]:
        tokens = _tokenize_query(q) if q.strip() else []
        clauses: list[Callable[[StoredFile], bool]] = []
        while tokens:
            clause, tokens = tokens[:3], tokens[3:]
            if len(clause) < 3:
                raise _ApiError(400, "invalid", f"Invalid query: {q}")
            left, op, right = clause
            clauses.append(self._compile_clause(left, op, right, request))
            if tokens:
                if tokens[0].lower() != "and":
                    raise _ApiError(400, "invalid", f"Only 'and' is supported: {q}")
                tokens = tokens[1:]
        return clauses

    def _compile_clause(
        self, left: str, op: str, right: str, request: web.Request | None = None
    ) -> Callable[[StoredFile], bool]:
        if op == "in" and right == "parents":
            parent = _unquote(left)
            parent_id = self.root_id if parent == "root" else parent
            if parent_id != self.root_id:
                self._lookup(parent_id, request)
            return lambda record: parent_id in record.parents
        if op not in ("=", "!="):
            raise _ApiError(400, "invalid", f"Unsupported operator {op}")
        negate = op == "!="
        if left == "trashed" and right in ("true", "false"):
            wanted = right == "true"
            return lambda record: (record.trashed == wanted) != negate
        getters: dict[str, Callable[[StoredFile], str]] = {
            "title": lambda record: record.title,
            "mimeType": lambda record: record.mime_type,
        }
        if left not in getters:
            raise _ApiError(400, "invalid", f"Unsupported query field {left}")
        getter, value = getters[left], _unquote(right)
        return lambda record: (getter(record) == value) != negate

    async def _insert(self, request: web.Request) -> web.Response:
        metadata = await _json_body(request)
        record = self._new_record(metadata, request[_PRINCIPAL], request)
        for parent in record.parents:
            self._require(self._files[parent], request[_PRINCIPAL], "writer", "adding files")
        with self._changed:
            self._files[record.id] = record
            self._changed.notify_all()
        return web.json_response(self._resource(record))

    def _new_record(
        self, metadata: dict[str, Any], owner: str, request: web.Request | None = None
    ) -> StoredFile:
        now = _now_rfc3339()
        parents = self._parents_from(metadata, request)
        record = StoredFile(
            _new_id(),
            str(metadata.get("title") or "Untitled"),
            str(metadata.get("mimeType") or "application/octet-stream"),
            parents,
            owner,
            now,
            now,
        )
        record.drive_id = self._files[parents[0]].drive_id
        return record

    async def _get(self, request: web.Request) -> web.StreamResponse:
        record = self._lookup(request.match_info["file_id"], request)
        if request.query.get("alt") == "media":
            return await self._media(request, record)
        return web.json_response(self._resource(record))

    async def _media(self, request: web.Request, record: StoredFile) -> web.StreamResponse:
        if not record.has_content or record.blob is None:
            raise _ApiError(
                403,
                "fileNotDownloadable",
                "Only files with binary content can be downloaded. "
                "Use Export with Docs Editors files.",
            )
        size = record.size or 0
        wanted = _parse_range(request.headers.get("Range"), size)
        first, last = wanted if wanted is not None else (0, size - 1)
        if wanted is not None and first >= size:
            return web.Response(
                status=416,
                headers={"Content-Range": f"bytes */{size}"},
                text="Range Not Satisfiable",
            )
        with record.blob.open("rb") as stream:
            stream.seek(first)
            data = stream.read(last - first + 1)
        response = web.StreamResponse(status=206 if wanted is not None else 200)
        response.content_type = record.mime_type
        response.content_length = len(data)
        if wanted is not None:
            response.headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        drop = self._take(self._drops, request)
        if drop is not None:
            data = data[: drop.after_bytes]
        await response.prepare(request)
        await response.write(data)
        with self._lock:
            self._download_bytes_sent += len(data)
        if drop is not None:
            request[_RECORD].fault = drop.name
            return self._drop(request, response)
        await response.write_eof()
        return response

    def _drop(self, request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        request[_DROPPED] = True
        if request.transport is not None:
            request.transport.close()
        return response

    async def _export(self, request: web.Request) -> web.Response:
        record = self._lookup(request.match_info["file_id"], request)
        mime_type = request.query.get("mimeType", "")
        if mime_type not in EXPORTS.get(record.mime_type, ()):
            raise _ApiError(400, "badRequest", f"Export to {mime_type} is not supported.")
        text = record.text or ""
        if mime_type == "application/pdf":
            return web.Response(body=b"%PDF-1.4\n" + text.encode(), content_type=mime_type)
        if len(text.encode()) > 10 * 1024 * 1024:
            raise _ApiError(
                403, "exportSizeLimitExceeded", "This file is too large to be exported."
            )
        return web.Response(text=text, content_type=mime_type)

    async def _update(self, request: web.Request) -> web.Response:
        record = self._lookup(request.match_info["file_id"], request)
        self._require(record, request[_PRINCIPAL], "writer", "changing files")
        metadata = await _json_body(request)
        self._apply_metadata(record, metadata, request.query)
        return web.json_response(self._resource(record))

    def _apply_metadata(self, record: StoredFile, metadata: dict[str, Any], query: Any) -> None:
        parents = self._parents_from(metadata) if metadata.get("parents") else None
        added = [self._lookup(p).id for p in query.get("addParents", "").split(",") if p]
        removed = set(query.get("removeParents", "").split(","))
        with self._changed:
            if "title" in metadata:
                record.title = str(metadata["title"])
            if metadata.get("mimeType"):
                record.mime_type = str(metadata["mimeType"])
            if parents is not None:
                record.parents = parents
            record.parents = [p for p in record.parents if p not in removed] + added
            if "labels" in metadata and "trashed" in metadata["labels"]:
                record.trashed = bool(metadata["labels"]["trashed"])
            record.modified = _now_rfc3339()
            self._changed.notify_all()

    async def _delete(self, request: web.Request) -> web.Response:
        record = self._lookup(request.match_info["file_id"], request)
        self._require(record, request[_PRINCIPAL], "organizer", "deleting files for good")
        with self._changed:
            self._remove_tree(record.id)
            self._changed.notify_all()
        return web.Response(status=204)

    def _remove_tree(self, file_id: str) -> None:
        removed = self._files.pop(file_id, None)
        if removed is None:
            return
        if removed.blob is not None:
            removed.blob.unlink(missing_ok=True)
        for child in [r.id for r in self._files.values() if file_id in r.parents]:
            self._remove_tree(child)

    async def _trash(self, request: web.Request) -> web.Response:
        return self._set_trashed(request, True)

    async def _untrash(self, request: web.Request) -> web.Response:
        return self._set_trashed(request, False)

    def _set_trashed(self, request: web.Request, trashed: bool) -> web.Response:
        record = self._lookup(request.match_info["file_id"], request)
        self._require(record, request[_PRINCIPAL], "fileOrganizer", "moving files to the trash")
        with self._changed:
            record.trashed = trashed
            self._changed.notify_all()
        return web.json_response(self._resource(record))

    async def _list_permissions(self, request: web.Request) -> web.Response:
        record = self._lookup(request.match_info["file_id"], request)
        owner = {"kind": "drive#permission", "id": "owner", "type": "user", "role": "owner"}
        with self._lock:
            items = [owner, *record.permissions]
        return web.json_response({"kind": "drive#permissionList", "items": items})

    async def _insert_permission(self, request: web.Request) -> web.Response:
        record = self._lookup(request.match_info["file_id"], request)
        body = await _json_body(request)
        kind, role = body.get("type"), body.get("role")
        if kind not in ("user", "group", "domain", "anyone") or role not in (
            "reader",
            "commenter",
            "writer",
            "owner",
        ):
            raise _ApiError(400, "invalid", "Invalid permission type or role.")
        drive = self._drives.get(record.drive_id or "")
        if kind == "anyone" and drive is not None and drive.domain_users_only:
            # What a Workspace policy against sharing outside the organisation answers.
            raise _ApiError(
                400, "publishOutNotPermitted", _REASON_MESSAGES["publishOutNotPermitted"]
            )
        perm_id = (
            ("anyoneWithLink" if body.get("withLink") else "anyone")
            if kind == "anyone"
            else _new_id()
        )
        permission = {"kind": "drive#permission", "id": perm_id, **body}
        with self._changed:
            record.permissions = [p for p in record.permissions if p["id"] != perm_id]
            record.permissions.append(permission)
            record.shared = True
            self._changed.notify_all()
        return web.json_response(permission)

    # -------------------------------------------------------------------- uploads

    async def _upload(self, request: web.Request) -> web.Response:
        upload_id = request.query.get("upload_id")
        if upload_id is not None:
            return await self._session_request(request, upload_id)
        target_id = request.match_info.get("file_id")
        if request.method not in ("POST", "PUT") or (request.method == "POST") == bool(target_id):
            raise _ApiError(405, "methodNotAllowed", "Method not allowed.")
        upload_type = request.query.get("uploadType", "media")
        if upload_type == "resumable":
            return await self._start_session(request, target_id)
        if upload_type == "multipart":
            metadata, data = await _read_multipart(request)
        elif upload_type == "media":
            metadata, data = {}, await request.read()
        else:
            raise _ApiError(400, "invalid", f"Unsupported uploadType {upload_type}")
        self._count_received(request, len(data))
        self._check_upload(request, metadata, target_id)
        blob = self._uploads / _new_id()
        blob.write_bytes(data)
        self._check_quota(len(data))
        record = self._store_upload(metadata, target_id, blob, request[_PRINCIPAL])
        return web.json_response(self._resource(record))

    def _check_upload(
        self, request: web.Request, metadata: dict[str, Any], target_id: str | None
    ) -> None:
        """Where new content may go: a service account only into a shared drive, and in a
        shared drive only a writer (Contributor) or above."""
        principal = request[_PRINCIPAL]
        if target_id is not None:
            self._require(self._lookup(target_id, request), principal, "writer", "changing files")
            return
        self._check_storage(self._parents_from(metadata, request), principal)

    async def _start_session(self, request: web.Request, target_id: str | None) -> web.Response:
        metadata = await _json_body(request)
        self._check_upload(request, metadata, target_id)
        length = request.headers.get("X-Upload-Content-Length")
        total = int(length) if length is not None else None
        self._check_quota(total or 0)
        session_id = secrets.token_urlsafe(24)
        path = self._uploads / session_id
        path.touch()
        session = UploadSession(
            session_id,
            metadata,
            target_id,
            total,
            request.headers.get("X-Upload-Content-Type") or "application/octet-stream",
            path,
            request[_PRINCIPAL],
        )
        with self._lock:
            self._sessions[session_id] = session
        location = f"{self.url}upload/drive/v2/files?uploadType=resumable&upload_id={session_id}"
        return web.Response(status=200, headers={"Location": location})

    async def _session_request(self, request: web.Request, upload_id: str) -> web.Response:
        with self._lock:
            session = self._sessions.get(upload_id)
        if session is None or session.cancelled:
            raise _ApiError(404, "notFound", "Upload session not found or expired.")
        if request.method == "DELETE":
            session.cancelled = True
            return web.Response(status=499)
        if request.method != "PUT":
            raise _ApiError(405, "methodNotAllowed", "Method not allowed.")
        content_range = _parse_content_range(request.headers.get("Content-Range"))
        if content_range is not None and content_range[2] is not None:
            session.total = content_range[2]
        if session.file_id is not None or content_range is None or content_range[0] is None:
            await self._drain(request)
            return self._session_state(session)
        start = content_range[0]
        if start > session.committed:
            await self._drain(request)
            return self._session_state(session)
        with self._lock:
            session.chunk_requests += 1
        dropped = await self._receive_chunk(request, session, start)
        if dropped is not None:
            return dropped
        return self._session_state(session)

    async def _receive_chunk(
        self, request: web.Request, session: UploadSession, start: int
    ) -> web.Response | None:
        drop = self._take(self._drops, request)
        limit = drop.after_bytes if drop is not None else None
        position = start
        received = 0
        with session.path.open("r+b") as stream:
            while limit is None or received < limit:
                want = _READ_PIECE if limit is None else min(_READ_PIECE, limit - received)
                piece = await request.content.read(want)
                if not piece:
                    break
                received += len(piece)
                skip = max(session.committed - position, 0)
                if skip < len(piece):
                    stream.seek(position + skip)
                    stream.write(piece[skip:])
                position += len(piece)
                session.committed = max(session.committed, position)
        self._count_received(request, received)
        if drop is None:
            return None
        request[_RECORD].fault = drop.name
        response = web.Response(status=500)
        self._drop(request, response)
        return response

    def _session_state(self, session: UploadSession) -> web.Response:
        complete = session.total is not None and session.committed >= session.total
        if session.file_id is None and complete:
            self._finish_session(session)
        if session.file_id is not None:
            return web.json_response(self._resource(self._lookup(session.file_id)))
        headers = {}
        if session.committed > 0:
            headers["Range"] = f"bytes=0-{session.committed - 1}"
        return web.Response(status=308, headers=headers)

    def _finish_session(self, session: UploadSession) -> None:
        with session.path.open("r+b") as stream:
            stream.truncate(session.total)
        metadata = dict(session.metadata)
        metadata.setdefault("mimeType", session.mime_type)
        record = self._store_upload(metadata, session.target_id, session.path, session.owner)
        session.file_id = record.id

    def _store_upload(
        self, metadata: dict[str, Any], target_id: str | None, blob: Path, owner: str
    ) -> StoredFile:
        if target_id is None:
            record = self._new_record(metadata, owner)
        else:
            record = self._lookup(target_id)
            self._apply_metadata(record, metadata, {})
        final = self._blobs / record.id
        blob.replace(final)
        self._set_content(record, final)
        with self._changed:
            self._files[record.id] = record
            self._changed.notify_all()
        return record


def _is_chunk_put(request: web.Request) -> bool:
    content_range = request.headers.get("Content-Range", "")
    return (
        request.method == "PUT"
        and "upload_id" in request.query
        and content_range.startswith("bytes ")
        and not content_range.startswith("bytes */")
    )


def _is_status_query(request: web.Request) -> bool:
    return (
        request.method == "PUT"
        and "upload_id" in request.query
        and request.headers.get("Content-Range", "").startswith("bytes */")
    )


def _is_metadata(request: web.Request) -> bool:
    """Whether the request is for the metadata server (it takes no access token)."""
    return request.path == "/" or request.path.startswith("/computeMetadata/")


def _is_media_get(request: web.Request) -> bool:
    return request.method == "GET" and request.query.get("alt") == "media"


def _copy_file(record: StoredFile) -> StoredFile:
    return dataclasses.replace(
        record, parents=list(record.parents), permissions=list(record.permissions)
    )


def _oauth_error(error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=400)


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise _ApiError(400, "parseError", "Parse Error") from error
    if not isinstance(data, dict):
        raise _ApiError(400, "parseError", "Parse Error")
    return data


async def _read_multipart(request: web.Request) -> tuple[dict[str, Any], bytes]:
    """Split a ``multipart/related`` upload into its JSON metadata and its media bytes."""
    match = re.search(r'boundary="?([^";]+)"?', request.headers.get("Content-Type", ""))
    if match is None:
        raise _ApiError(400, "badContent", "Missing multipart boundary.")
    delimiter = b"--" + match.group(1).encode()
    raw = await request.read()
    parts = []
    for chunk in raw.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        parts.append(_part_body(chunk))
    if len(parts) != 2:
        raise _ApiError(400, "badContent", "Expected metadata and media parts.")
    metadata = json.loads(parts[0]) if parts[0].strip() else {}
    return metadata, parts[1]


def _part_body(chunk: bytes) -> bytes:
    """The body of one multipart part, given the bytes between two delimiters."""
    newline = b"\r\n" if chunk.startswith(b"\r\n") else b"\n"
    chunk = chunk.removeprefix(newline)
    _, separator, body = chunk.partition(newline * 2)
    if not separator:
        raise _ApiError(400, "badContent", "A multipart part has no header end.")
    return body.removesuffix(newline)
