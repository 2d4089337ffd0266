"""Files people send in the chat: which attachment a message carries, its name, and getting it.

Phone clients send a file as a ``document``, an ``.mp4`` as a ``video`` (re-encoded by
Telegram, often without a file name) or a GIF-like clip as an ``animation``; all three are job
inputs. Getting the bytes depends on the Bot API server:

- Telegram's own serves them under ``/file/bot<token>/``, up to 20 MB;
- a self-hosted ``telegram-bot-api`` serves no files at all. Started with ``--local`` it
  answers ``getFile`` with the file's absolute path on its disk (and has no 20 MB limit);
  without it, with a path relative to its working folder. Either way colabot copies the file
  from that disk, which it sees directly or as ``telegram.local_files_dir`` (a shared volume),
  never through a link at the file's own name (whoever writes that folder could place one).

Every file counts against the limit as its bytes arrive, whether Telegram said its size or not.
"""

from __future__ import annotations

import asyncio
import mimetypes
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from telegram import Animation, Document, Message, Video
from telegram.error import BadRequest, TelegramError

from bot.errors import UploadError
from bot.limits import BOT_DOWNLOAD_MB, MB
from workers.safety.files import create_private, open_nofollow, private_dir
from workers.safety.names import safe_name
from workers.safety.paths import Refused, relative_parts

Attachment = Document | Video | Animation
CHUNK = 1024 * 1024


def attachment_of(message: Message | None) -> Attachment | None:
    """The file a message carries: a document, a video or an animation (None: none)."""
    if message is None:
        return None
    return message.document or message.video or message.animation


def attachment_name(attachment: Attachment) -> str:
    """A safe file name for an attachment; a video without one gets one from its type."""
    if attachment.file_name:
        return safe_name(attachment.file_name, "upload.bin")
    kind = "animation" if isinstance(attachment, Animation) else "video"
    if isinstance(attachment, Document):
        kind = "upload"
    suffix = mimetypes.guess_extension(attachment.mime_type or "") or ""
    if attachment.mime_type == "video/mp4":
        suffix = ".mp4"
    return safe_name(f"{kind}-{attachment.file_unique_id}{suffix or '.bin'}", "upload.bin")


def server_path(file_path: str, base_file_url: str) -> str:
    """The path the server gave, before python-telegram-bot turned it into a download URL
    (it does so for every path that is not a file on this machine)."""
    prefix = base_file_url.rstrip("/") + "/"
    return file_path[len(prefix) :] if file_path.startswith(prefix) else file_path


def too_large_message(name: str, size_mb: float | None, limit_mb: float) -> str:
    """Why a sent file cannot be used, and what to do instead (``size_mb`` None: a file
    Telegram gave no size for, found larger while it came)."""
    size = f"{size_mb:.1f} MB" if size_mb is not None else f"more than {limit_mb:g} MB"
    return (
        f"{name} is {size}, but bots can only download files up to {limit_mb:g} MB "
        "from Telegram. Instead: put it on this machine and give its path (inside the allowed "
        "folders), share it from Google Drive and give the link, or give an http(s) URL."
    )


def download_url(file_url: str) -> str:
    """The URL python-telegram-bot made of a server's ``file_path``, with its path quoted
    as python-telegram-bot's own download does."""
    parts = urlsplit(file_url)
    return urlunsplit(parts._replace(path=quote(parts.path)))


@dataclass(frozen=True)
class ServerFiles:
    """Where a Bot API server's files can be read: ``self_hosted`` servers serve none over
    HTTP; ``local_dir`` is their working folder as colabot sees it (None: the same paths)."""

    self_hosted: bool = False
    local_mode: bool = False
    local_dir: Path | None = None

    @property
    def limit_mb(self) -> float | None:
        """Telegram's download limit for bots, if the server has one."""
        return None if self.local_mode else BOT_DOWNLOAD_MB

    def on_disk(self, file_path: str, token: str) -> Path | None:
        """The file a server's ``file_path`` names, on a disk colabot can read; None when it
        must be downloaded over HTTP (Telegram's own server).

        An absolute path (``--local``) is used as it is, or moved under ``local_dir`` from
        the bot's folder (named by its token) on. A relative one lies in that bot folder.
        Refused for a path with ``..`` or control characters in it. The parts are checked as
        written, not resolved: the shared folder may well be a symlink or a mount (the file
        itself is opened without following a link).
        """
        pure = PurePosixPath(file_path)
        if not pure.is_absolute() and not self.self_hosted:
            return None
        if pure.is_absolute():
            parts = relative_parts(PurePosixPath(*pure.parts[1:]))
            if self.local_dir is None:
                return Path("/").joinpath(*parts)
            inner = parts[parts.index(token) :] if token in parts else parts[-2:]
            return self.local_dir.joinpath(*inner)
        root = self.local_dir
        if root is None:
            return None
        return root.joinpath(token, *relative_parts(pure))


class Downloads:
    """Brings sent files into colabot's staging folder, checked against the limits."""

    def __init__(self, staging: Path, limit_mb: float, server: ServerFiles, token: str) -> None:
        self.staging = staging
        self.server = server
        self.token = token
        server_limit = server.limit_mb
        self.limit_mb = limit_mb if server_limit is None else min(limit_mb, server_limit)

    def check_size(self, attachment: Attachment, name: str) -> None:
        """Refuse a file over the limit before anything is downloaded."""
        size = attachment.file_size or 0
        if size > self.limit_mb * MB:
            raise UploadError(name, too_large_message(name, size / MB, self.limit_mb))

    @property
    def limit_bytes(self) -> int:
        """The most bytes one sent file may have."""
        return int(self.limit_mb * MB)

    async def fetch(self, attachment: Attachment, name: str) -> Path:
        """Download (or copy from the server's disk) into a fresh staging folder; nothing of
        it stays there when that fails or the file is over the limit."""
        self.check_size(attachment, name)
        folder = private_dir(self.staging / secrets.token_hex(8))
        try:
            return await self._fetch(attachment, name, folder / name)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, folder, True)
            raise

    async def _fetch(self, attachment: Attachment, name: str, target: Path) -> Path:
        size = attachment.file_size or 0
        try:
            telegram_file = await attachment.get_file()
        except BadRequest as exc:
            if "too big" in str(exc.message).lower():
                limit = self.server.limit_mb or self.limit_mb
                raise UploadError(name, too_large_message(name, size / MB, limit)) from None
            raise UploadError(name, f"Telegram refused the download: {exc.message}") from None
        except TelegramError as exc:
            raise UploadError(name, f"the download failed ({exc}); please send it again") from None
        file_path = server_path(telegram_file.file_path or "", attachment.get_bot().base_file_url)
        try:
            on_disk = self.server.on_disk(file_path, self.token)
        except Refused as exc:
            raise UploadError(
                name, f"the Bot API server named a file colabot will not read ({exc.reason})"
            ) from None
        if on_disk is not None:
            await self._copy(on_disk, target, name)
        else:
            await self._download(download_url(telegram_file.file_path or ""), target, name)
        if size and await asyncio.to_thread(lambda: target.stat().st_size) != size:
            raise UploadError(name, "the download was incomplete; please send it again")
        return target

    async def _copy(self, source: Path, target: Path, name: str) -> None:
        try:
            await asyncio.to_thread(self._copy_file, source, target, name)
        except OSError:
            raise UploadError(
                name,
                "the Bot API server keeps this file on its own disk, and colabot cannot read "
                "it there (or it is a link, which colabot does not follow): share the "
                "server's working folder with colabot and name it in telegram.local_files_dir",
            ) from None

    def _copy_file(self, source: Path, target: Path, name: str) -> None:
        with open_nofollow(source) as src, create_private(target) as out:
            _write_limited(iter(lambda: src.read(CHUNK), b""), out, self.limit_bytes, name)

    async def _download(self, url: str, target: Path, name: str) -> None:
        timeout = httpx.Timeout(30.0, connect=10.0)
        try:
            async with (
                httpx.AsyncClient(timeout=timeout) as client,
                client.stream("GET", url) as response,
            ):
                if response.status_code in (401, 404):
                    # A self-hosted server answers 404 for /file/ paths.
                    raise UploadError(
                        name,
                        "this Bot API server does not serve file downloads: run "
                        "telegram-bot-api with --local (telegram.local_mode = true), or share "
                        "its working folder as telegram.local_files_dir",
                    )
                if response.status_code >= 400:
                    raise UploadError(
                        name,
                        f"the download failed (HTTP {response.status_code}); please send it again",
                    )
                with create_private(target) as out:
                    await _stream_limited(response.aiter_bytes(CHUNK), out, self.limit_bytes, name)
        except httpx.HTTPError as exc:
            # Named by its type only: the URL, which holds the bot token, stays out.
            raise UploadError(
                name, f"the download failed ({type(exc).__name__}); please send it again"
            ) from None


def _over(name: str, limit: int) -> UploadError:
    return UploadError(name, too_large_message(name, None, limit / MB))


def _write_limited(chunks: Iterator[bytes], out: BinaryIO, limit: int, name: str) -> None:
    """Write ``chunks`` to ``out``, refusing the file once it passes ``limit`` bytes."""
    written = 0
    for chunk in chunks:
        written += len(chunk)
        if written > limit:
            raise _over(name, limit)
        out.write(chunk)


async def _stream_limited(
    chunks: AsyncIterator[bytes], out: BinaryIO, limit: int, name: str
) -> None:
    """:func:`_write_limited` for bytes arriving from the network."""
    written = 0
    async for chunk in chunks:
        written += len(chunk)
        if written > limit:
            raise _over(name, limit)
        out.write(chunk)
