"""Fetching job inputs from http(s) URLs and Google Drive links, into a local cache.

Downloads stream to disk (never into memory), report bytes, rate and ETA, resume after a
broken connection (Range requests for http, chunked downloads for Drive), and are checked
against the size the server promised. Fetched inputs are cached by source and ETag or size,
so /resume and repeated inference do not download again.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import re
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from workers.errors import ColabotError, DriveError, DrivePermissionError, InputError
from workers.inputs.netpolicy import FetchPolicy, check_address, check_url, filename_for
from workers.inputs.sources import DriveSource, UrlSource
from workers.jobs import Progress
from workers.safety.names import safe_name, shown

if TYPE_CHECKING:
    from workers.drive.client import DriveClient
    from workers.drive.metadata import DriveFile

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]
CHUNK = 1024 * 1024
MAX_REDIRECTS = 10
MAX_ATTEMPTS = 5
REPORT_EVERY_S = 0.5
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".h5", ".hdf5", ".mj2", ".webm")
# What Google Docs files colabot can use as inputs, exported as (MIME type, file suffix).
GOOGLE_EXPORTS = {
    "application/vnd.google-apps.document": ("text/plain", ".txt"),
    "application/vnd.google-apps.spreadsheet": ("text/csv", ".csv"),
}


class SafeResolver(AbstractResolver):
    """A DNS resolver that refuses names resolving to internal addresses (every hop)."""

    def __init__(self, policy: FetchPolicy) -> None:
        self._policy = policy
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve, then check every address."""
        results = await self._inner.resolve(host, port, family)
        for result in results:
            check_address(str(result["host"]), host, self._policy)
        return results

    async def close(self) -> None:
        """Close the underlying resolver."""
        await self._inner.close()


class ProgressReporter:
    """Turns byte counts into throttled Progress: bytes, rate and ETA."""

    def __init__(self, name: str, callback: ProgressCallback) -> None:
        self.name = name
        self.callback = callback
        self.started = time.monotonic()
        self.first_bytes: int | None = None
        self.last = 0.0

    def __call__(self, done: int, total: int | None, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.first_bytes is None:
            self.first_bytes = done
        if not force and now - self.last < REPORT_EVERY_S:
            return
        self.last = now
        self.callback(
            download_progress(self.name, done, total, self.first_bytes, now - self.started)
        )


def download_progress(
    name: str, done: int, total: int | None, resumed_from: int, seconds: float
) -> Progress:
    """Progress of one download (pure)."""
    rate = (done - resumed_from) / seconds if seconds > 0 else 0.0
    mb = 1024 * 1024
    text = f"downloading {name}: {done / mb:.1f}"
    text += f" of {total / mb:.1f} MB" if total else " MB"
    text += f" · {rate / mb:.1f} MB/s"
    eta = (total - done) / rate if total and rate > 0 else None
    return Progress(
        fraction=(done / total) if total else None,
        message=text,
        eta_s=eta,
        updated_at=time.time(),
    )


@dataclass(frozen=True)
class CacheEntry:
    """A cached download and the validator that says it is still the same file."""

    path: Path
    validator: str


class InputCache:
    """Fetched inputs by source: ``<root>/<sha256 of source>/<name>`` plus ``meta.json``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, source: str) -> Path:
        """Where one source's files live."""
        return self.root / hashlib.sha256(source.encode()).hexdigest()[:32]

    def lookup(self, source: str, validator: str) -> Path | None:
        """The cached path if the validator still matches."""
        meta = self.folder(source) / "meta.json"
        try:
            data = json.loads(meta.read_text())
        except (OSError, ValueError):
            return None
        name = str(data.get("name") or "")
        path = self.folder(source) / name
        if name and data.get("validator") == validator and path.exists():
            return path
        return None

    def entry(self, source: str) -> CacheEntry | None:
        """The complete cached download of a source, whatever its validator."""
        try:
            data = json.loads((self.folder(source) / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        path = self.folder(source) / str(data.get("name") or "")
        if not data.get("name") or not path.exists():
            return None
        return CacheEntry(path, str(data.get("validator", "")))

    def store(self, source: str, validator: str, name: str) -> None:
        """Record that ``name`` in the source's folder is complete for ``validator``."""
        meta = self.folder(source) / "meta.json"
        meta.write_text(json.dumps({"source": source, "validator": validator, "name": name}))


def http_validator(headers: Any, total: int | None) -> str:
    """What identifies a remote file's version: its ETag, else size and modification date."""
    etag = headers.get("ETag")
    if etag:
        return f"etag:{etag}"
    return f"size:{total}:{headers.get('Last-Modified', '')}"


class HttpFetcher:
    """Downloads http(s) URLs with aiohttp under a FetchPolicy."""

    def __init__(
        self, policy: FetchPolicy, cache: InputCache, *, retry_delay_s: float = 0.5
    ) -> None:
        """A failed attempt is tried again after ``retry_delay_s``, doubled each time."""
        self.policy = policy
        self.cache = cache
        self.retry_delay_s = retry_delay_s

    async def fetch(self, url: str, progress: ProgressCallback) -> Path:
        """Download ``url`` (or find it in the cache); return the local file."""
        check_url(url, self.policy)
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self.policy.timeout_seconds, sock_read=self.policy.timeout_seconds
        )
        connector = aiohttp.TCPConnector(resolver=SafeResolver(self.policy))
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False
        ) as session:
            return await self._fetch(session, url, progress)

    async def _open(
        self, session: aiohttp.ClientSession, url: str, headers: dict[str, str]
    ) -> tuple[aiohttp.ClientResponse, str]:
        """GET with redirects followed by hand, so every hop is checked."""
        current = url
        for _ in range(MAX_REDIRECTS):
            response = await session.get(current, headers=headers, allow_redirects=False)
            if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                target = urljoin(current, response.headers["Location"])
                response.release()
                try:
                    check_url(target, self.policy)
                except InputError as exc:
                    raise InputError(url, f"it redirects to {target}: {exc.reason}") from None
                current = target
                continue
            return response, current
        raise InputError(url, f"more than {MAX_REDIRECTS} redirects")

    async def _fetch(
        self, session: aiohttp.ClientSession, url: str, progress: ProgressCallback
    ) -> Path:
        folder = self.cache.folder(url)
        folder.mkdir(parents=True, exist_ok=True)
        have = 0
        part: Path | None = None
        promised: int | None = None
        validator = ""
        name = ""
        reporter: ProgressReporter | None = None
        last_problem = ""
        known = self.cache.entry(url)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            headers = {"Accept-Encoding": "identity"}
            if part is not None and have:
                headers["Range"] = f"bytes={have}-"
            elif part is None and known is not None and known.validator.startswith("etag:"):
                headers["If-None-Match"] = known.validator[len("etag:") :]
            try:
                response, final = await self._open(session, url, headers)
            except aiohttp.ClientConnectorError as exc:
                raise InputError(url, f"cannot connect: {exc.os_error or exc}") from None
            except InputError:
                raise
            except (aiohttp.ClientError, TimeoutError) as exc:
                last_problem = _describe_failure(exc, self.policy)
                await asyncio.sleep(min(8.0, self.retry_delay_s * 2**attempt))
                continue
            async with response:
                if response.status == 304 and known is not None:
                    progress(Progress(fraction=1.0, message=f"using cached {known.path.name}"))
                    return known.path
                _raise_for_status(url, response.status, response.reason or "")
                if response.status >= 500:
                    last_problem = f"the server answered HTTP {response.status}"
                    await asyncio.sleep(min(8.0, self.retry_delay_s * 2**attempt))
                    continue
                total = _total_size(response, have)
                if part is None:
                    promised = total
                    validator = http_validator(response.headers, total)
                    offered = response.content_disposition
                    name = filename_for(final, offered.filename if offered else None)
                    cached = self.cache.lookup(url, validator)
                    if cached is not None:
                        progress(Progress(fraction=1.0, message=f"using cached {cached.name}"))
                        return cached
                    if promised is not None and promised > self.policy.max_bytes:
                        raise InputError(url, _too_large(promised, self.policy.max_bytes))
                    part = folder / f"{name}.part"
                    reporter = ProgressReporter(name, progress)
                if response.status == 200 and have:
                    have = 0  # the server ignored Range: start over
                assert part is not None and reporter is not None
                try:
                    have = await self._stream(response, part, have, promised, reporter, url)
                except (
                    aiohttp.ClientPayloadError,
                    aiohttp.ClientConnectionError,
                    TimeoutError,
                ) as exc:
                    have = part.stat().st_size if part.exists() else 0
                    last_problem = _describe_failure(exc, self.policy)
                    if promised is not None and not isinstance(exc, TimeoutError):
                        last_problem = (
                            "the download size does not match what the server promised: "
                            f"the connection closed after {have} of {promised} bytes"
                        )
                    log.info("download of %s broke at %d bytes (%s); resuming", url, have, exc)
                    continue
            if promised is not None and have != promised:
                last_problem = (
                    f"the download size does not match what the server promised: "
                    f"{have} of {promised} bytes"
                )
                continue
            assert part is not None and reporter is not None
            reporter(have, promised, force=True)
            target = folder / name
            part.replace(target)
            self.cache.store(url, validator, name)
            return target
        if part is not None:
            part.unlink(missing_ok=True)
        raise InputError(url, last_problem or "the download failed")

    async def _stream(
        self,
        response: aiohttp.ClientResponse,
        part: Path,
        have: int,
        promised: int | None,
        reporter: ProgressReporter,
        url: str,
    ) -> int:
        mode = "ab" if have else "wb"
        with part.open(mode) as out:
            async for chunk in response.content.iter_chunked(CHUNK):
                have += len(chunk)
                if promised is not None and have > promised:
                    raise InputError(
                        url, f"the server sent more than the {promised} bytes it promised"
                    )
                if have > self.policy.max_bytes:
                    raise InputError(url, _too_large(have, self.policy.max_bytes))
                out.write(chunk)
                reporter(have, promised)
        return have


def _total_size(response: aiohttp.ClientResponse, have: int) -> int | None:
    if response.status == 206:
        match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
        if match and match.group(3) != "*":
            return int(match.group(3))
        return None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _raise_for_status(url: str, status: int, reason: str) -> None:
    if status in (200, 206) or status >= 500:
        return
    meanings = {
        401: "it needs a login (HTTP 401)",
        403: "access is denied (HTTP 403 Forbidden)",
        404: "not found (HTTP 404)",
        410: "it is gone (HTTP 410)",
        416: "the server refused the byte range (HTTP 416)",
        429: "the server is rate-limiting requests (HTTP 429)",
    }
    raise InputError(url, meanings.get(status, f"the server answered HTTP {status} {reason}"))


def _describe_failure(exc: BaseException, policy: FetchPolicy) -> str:
    if isinstance(exc, TimeoutError):
        return f"the server sent nothing for {policy.timeout_seconds:g} s (timed out)"
    return f"the connection broke ({type(exc).__name__})"


def _too_large(size: int, limit: int) -> str:
    mb = 1024 * 1024
    return f"it is {size / mb:.1f} MB, more than inputs.max_download_mb ({limit / mb:.0f} MB)"


def _too_large_together(labels: str, limit: int) -> str:
    mb = 1024 * 1024
    return (
        f"with {labels} and the videos beside it, it comes to more than "
        f"inputs.max_download_mb ({limit / mb:.0f} MB)"
    )


class DriveFetcher:
    """Downloads Drive files and folders through the shared Drive client (in threads)."""

    def __init__(
        self, client: Callable[[], DriveClient], policy: FetchPolicy, cache: InputCache
    ) -> None:
        self._client_factory = client
        self._client: DriveClient | None = None
        self.policy = policy
        self.cache = cache

    def client(self) -> DriveClient:
        """The Drive client, created on first use."""
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    async def fetch(self, drive_source: DriveSource, progress: ProgressCallback) -> Path:
        """Download a file or a whole folder (following a shortcut to what it points at, and
        exporting a Google Docs or Sheets file); return the local file or folder."""
        file_id = drive_source.file_id
        source = f"drive:{file_id}"
        loop = asyncio.get_running_loop()
        client = self.client()
        try:
            item = await asyncio.to_thread(client.resolve, file_id, drive_source.resource_key)
        except DrivePermissionError as exc:
            share = f"; share it with {exc.share_with}" if exc.share_with else ""
            raise InputError(
                source, f"the Drive credentials cannot read it ({exc.detail}){share}"
            ) from None
        except DriveError as exc:
            raise InputError(source, str(exc)) from None
        reporter = ProgressReporter(item.title, progress)

        def report(done: int, total: int) -> None:
            loop.call_soon_threadsafe(reporter, done, total or None)

        if item.is_folder:
            return await self._fetch_folder(item, source, report)
        if item.is_google_doc:
            return await self._export(client, item, source)
        if item.size is not None and item.size > self.policy.max_bytes:
            raise InputError(source, _too_large(item.size, self.policy.max_bytes))
        validator = f"md5:{item.md5 or ''}:{item.size}"
        cached = self.cache.lookup(source, validator)
        if cached is not None:
            progress(Progress(fraction=1.0, message=f"using cached {cached.name}"))
            return cached
        folder = self.cache.folder(source)
        name = safe_name(item.title, "download")
        limit = self.policy.max_bytes
        path = await self._download(client, item, folder / name, report, source, limit)
        if name.endswith(".slp") and not name.endswith(".pkg.slp"):
            await self._fetch_sibling_videos(client, item, path, report)
        # Cached only when whole: labels whose videos were refused are fetched again.
        self.cache.store(source, validator, name)
        return path

    async def _export(self, client: DriveClient, item: DriveFile, source: str) -> Path:
        """A Google Docs file as text, a Google Sheets file as CSV (and as JSONL when it has a
        ``text`` column, which spaCy reads); anything else is refused, naming what works."""
        export = GOOGLE_EXPORTS.get(item.mime_type)
        kind = item.mime_type.removeprefix("application/vnd.google-apps.")
        if export is None:
            raise InputError(
                source,
                f"{item.title} is a Google {kind.title()} file, which has no file content. "
                "colabot can read Google Docs (as .txt) and Google Sheets (as .csv, or .jsonl "
                "when a column is called text); otherwise export it (File > Download) and "
                "share the exported file",
            )
        mime_type, suffix = export
        folder = self.cache.folder(source)
        target = folder / (safe_name(item.title, "download") + suffix)
        try:
            path = await asyncio.to_thread(client.export, item, mime_type, target)
        except ColabotError as exc:
            raise InputError(source, str(exc)) from None
        if suffix == ".csv":
            rows = await asyncio.to_thread(csv_as_jsonl, path)
            if rows is not None:
                return rows
        return path

    async def _download(
        self,
        client: DriveClient,
        item: DriveFile,
        dest: Path,
        report: Callable[[int, int], None],
        source: str,
        max_bytes: int,
    ) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        download = functools.partial(client.download_item, max_bytes=max_bytes)
        try:
            return await asyncio.to_thread(download, item, dest, report)
        except ColabotError as exc:
            raise InputError(source, str(exc)) from None

    async def _fetch_folder(
        self, item: DriveFile, source: str, report: Callable[[int, int], None]
    ) -> Path:
        folder = self.cache.folder(source) / safe_name(item.title, "download")
        if folder.exists():
            shutil.rmtree(folder)
        try:
            await asyncio.to_thread(
                functools.partial(
                    self.client().download_folder,
                    item.id,
                    folder,
                    report,
                    max_bytes=self.policy.max_bytes,
                    resource_key=item.resource_key,
                )
            )
        except ColabotError as exc:
            raise InputError(source, str(exc)) from None
        return folder

    async def _fetch_sibling_videos(
        self,
        client: DriveClient,
        item: DriveFile,
        labels: Path,
        report: Callable[[int, int], None],
    ) -> None:
        """Fetch videos the labels name that sit in the same Drive folder, beside them.

        They count against ``inputs.max_download_mb`` with the labels: each one, and all of
        them together.
        """
        content = await asyncio.to_thread(labels.read_bytes)
        limit = self.policy.max_bytes
        left = limit - len(content)
        counted: set[Path] = set()
        for parent in item.parent_ids:
            try:
                siblings = await asyncio.to_thread(client.list_folder, parent)
            except ColabotError:
                continue
            for sibling in siblings:
                title = sibling.title
                if sibling.is_folder or not title.lower().endswith(VIDEO_SUFFIXES):
                    continue
                if title.encode() not in content:
                    continue
                target = labels.parent / safe_name(title, "download")
                if target in counted:
                    continue  # listed in two of its folders
                if not target.exists():
                    where = f"drive:{shown(title)}"
                    if sibling.size is not None and sibling.size > limit:
                        raise InputError(where, _too_large(sibling.size, limit))
                    if sibling.size is not None and sibling.size > left:
                        raise InputError(where, _too_large_together(labels.name, limit))
                    await self._download(client, sibling, target, report, where, left)
                left -= target.stat().st_size
                counted.add(target)


class Fetcher:
    """The engine's RemoteFetcher: URLs and Drive links under the configured policy."""

    def __init__(
        self,
        policy: FetchPolicy,
        cache_dir: Path,
        drive_client: Callable[[], DriveClient] | None = None,
        *,
        retry_delay_s: float = 0.5,
    ) -> None:
        cache = InputCache(cache_dir)
        self.http = HttpFetcher(policy, cache, retry_delay_s=retry_delay_s)
        self.drive = DriveFetcher(drive_client, policy, cache) if drive_client else None
        self.policy = policy

    def check(self, source: UrlSource | DriveSource) -> None:
        """Refuse what can be refused without the network."""
        if isinstance(source, UrlSource):
            check_url(source.url, self.policy)
        elif self.drive is None:
            raise InputError(
                f"drive:{source.file_id}",
                "Drive links need Drive credentials: set drive.service_account_file "
                '(or drive.auth = "colab" on Colab)',
            )

    async def fetch(self, source: UrlSource | DriveSource, progress: ProgressCallback) -> Path:
        """Fetch into the cache; return the local file or folder."""
        if isinstance(source, UrlSource):
            return await self.http.fetch(source.url, progress)
        if self.drive is None:
            self.check(source)
        assert self.drive is not None
        return await self.drive.fetch(source, progress)


def csv_as_jsonl(path: Path) -> Path | None:
    """A CSV with a ``text`` column as JSONL beside it (one object per row); None without one."""
    import csv

    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "text" not in rows[0]:
        return None
    target = path.with_suffix(".jsonl")
    with target.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return target
