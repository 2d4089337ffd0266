"""Moving bytes to and from Drive: chunked resumable uploads, ranged downloads that resume and
are checked against Drive's size and MD5, whole folder trees, Google Docs exports, and the
progress each of them reports. Metadata comes from :class:`DriveMetadata`, every request goes
through the :class:`DriveSession` and its retry policy."""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from workers.drive.failures import NATIVE_DOC_MESSAGE, session_expired
from workers.drive.metadata import DriveFile, DriveMetadata, key_headers
from workers.drive.session import DriveSession
from workers.errors import DriveError
from workers.safety.names import safe_name, unique_name
from workers.safety.paths import Refused, join_inside

try:
    from googleapiclient.errors import HttpError
    from googleapiclient.http import MediaIoBaseUpload
except ImportError:  # the optional "drive" extra is not installed: connecting says so
    pass
else:

    class _ChunkedFile(MediaIoBaseUpload):  # type: ignore[misc]  # googleapiclient is untyped
        """Resumable media that hands each chunk to the transport as bytes, never as a stream.

        httplib2 silently re-sends a request once when a kept-alive connection turns out to be
        closed, and oauth2client re-sends once after refreshing a token on a 401; both re-send
        the same body object, and a stream slice that was already read would go out empty.
        """

        def has_stream(self) -> bool:
            """Make googleapiclient read each chunk into memory."""
            return False


class _Watched:
    """An authorized httplib2 object as googleapiclient uses it, remembering whether the last
    request asked a resumable session how much arrived (``Content-Range: bytes */TOTAL``):
    ``next_chunk`` raises the same HttpError for a failed status query, sent once, as for a
    chunk it already sent ``num_retries`` more times."""

    def __init__(self, http: Any) -> None:
        self._http = http
        self.asked_status = False

    def request(
        self, uri: str, method: str = "GET", body: Any = None, headers: Any = None, **kwargs: Any
    ) -> Any:
        """Send through the wrapped object (its credentials and timeouts)."""
        content_range = str((headers or {}).get("Content-Range", ""))
        self.asked_status = content_range.startswith("bytes */")
        return self._http.request(uri, method, body=body, headers=headers, **kwargs)


Progress = Callable[[int, int], None]
"""Called as ``progress(bytes_done, total_bytes)``, never with a smaller ``bytes_done``."""

_logger = logging.getLogger(__name__)


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


class DriveTransfers:
    """Uploads and downloads through a :class:`DriveSession`; every method raises DriveError
    subclasses only. Instances may be shared between threads."""

    def __init__(self, session: DriveSession, metadata: DriveMetadata) -> None:
        self._session = session
        self._metadata = metadata

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

        Failed chunks are retried with backoff, resuming from the offset Drive acknowledged
        (asking again, with backoff, when the question itself fails); an expired upload
        session is started over once. Nothing appears in the folder unless the upload
        completes.
        """
        try:
            return self._upload(path, parent_id, title or path.name, progress)
        except OSError as error:
            raise DriveError("upload", f"cannot read {path}: {error.strerror or error}") from None

    def _upload(
        self, path: Path, parent_id: str, name: str, progress: Progress | None
    ) -> DriveFile:
        size = path.stat().st_size
        existing = self._metadata.find(name, parent_id, folders=False)
        mime_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        with path.open("rb") as stream:
            media = _ChunkedFile(
                stream,
                mimetype=mime_type,
                chunksize=self._session.settings.chunk_bytes,
                resumable=True,
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
        files = self._session.service.files()
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
        # how much arrived (Content-Range: bytes */TOTAL) and resends only from there. That
        # question is sent once; a 5xx answer to it is retried here, as Google's guide says to
        # resume after a 5xx, and each question counts as one attempt.
        report = _ProgressReporter(progress, total)
        report(0)
        attempt = 0
        restarted = False
        while True:
            attempt += 1
            self._session.ready()
            http = _Watched(self._session.http())
            try:
                status, body = request.next_chunk(
                    http=http, num_retries=self._session.patience.retries
                )
            except Exception as exc:
                if not restarted and session_expired(exc, request):
                    restarted = True
                    request.resumable_uri = None
                    request.resumable_progress = 0
                    continue
                error = self._session.classified("upload", exc, denied)
                if isinstance(exc, HttpError) and error is not None and not http.asked_status:
                    # An answer googleapiclient already retried as far as it was worth it.
                    raise error from exc
                self._session.after_failure("upload", exc, attempt, denied)
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
        return self._download(self._metadata.get(file_id, resource_key), dest, progress)

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
        """A Google Docs/Sheets file exported as ``mime_type`` (Drive exports at most 10 MB),
        through the API's ``files.export``. The file's ``exportLinks`` only say which formats
        are offered: they are for browsers, on another host than the API's."""
        offered = sorted(dict(item.export_links))
        if mime_type not in offered:
            raise DriveError(
                "export",
                f"{item.title} cannot be exported as {mime_type} ({', '.join(offered) or 'none'})",
            )

        def fetch() -> bytes:
            files = self._session.service.files()
            request = files.export_media(fileId=item.id, mimeType=mime_type)
            request.headers.update(key_headers(item))
            return bytes(self._session.execute(request))

        data = self._session.call("export", fetch, f"cannot read {item.id}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        return dest

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
            raise DriveError("download", f"{item.title}: {NATIVE_DOC_MESSAGE}")
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
        self._session.ready()
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
        request = self._session.service.files().get_media(fileId=file_id, supportsAllDrives=True)
        return str(request.uri)

    def _fetch_chunk(
        self, url: str, offset: int, item: DriveFile
    ) -> tuple[bytes, int | None] | None:
        """One ranged GET: (bytes, total size), or None past the end."""
        last = offset + self._session.settings.chunk_bytes - 1
        headers = {"Range": f"bytes={offset}-{last}", **key_headers(item)}
        attempt = 0
        while True:
            attempt += 1
            self._session.ready()
            try:
                response, content = self._session.http().request(url, "GET", headers=headers)
                if response.status == 416:
                    return None
                if response.status >= 300:
                    raise HttpError(response, content, uri=url)
                return _checked_range(response, bytes(content), offset)
            except Exception as exc:
                self._session.after_failure("download", exc, attempt, f"cannot read {item.id}")

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
        for listed in self._metadata.list_folder(folder_id, resource_key):
            item = (
                self._metadata.resolve(listed.id, listed.resource_key)
                if listed.is_shortcut
                else listed
            )
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
