"""Files people send in the chat: which attachment a message carries, its name, and getting it.

Phone clients send a file as a ``document``, an ``.mp4`` as a ``video`` (re-encoded by
Telegram, often without a file name) or a GIF-like clip as an ``animation``; all three are job
inputs. Getting the bytes depends on the Bot API server:

- Telegram's own serves them under ``/file/bot<token>/``, up to 20 MB;
- a self-hosted ``telegram-bot-api`` serves no files at all. Started with ``--local`` it
  answers ``getFile`` with the file's absolute path on its disk (and has no 20 MB limit);
  without it, with a path relative to its working folder. Either way colabot copies the file
  from that disk, which it sees directly or as ``telegram.local_files_dir`` (a shared volume).
"""

from __future__ import annotations

import asyncio
import mimetypes
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from telegram import Animation, Document, Message, Video
from telegram.error import BadRequest, InvalidToken, TelegramError

from bot.errors import UploadError
from workers.names import safe_name

Attachment = Document | Video | Animation
MB = 1024 * 1024
PUBLIC_DOWNLOAD_LIMIT_MB = 20


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


def too_large_message(name: str, size_mb: float, limit_mb: float) -> str:
    """Why a sent file cannot be used, and what to do instead."""
    return (
        f"{name} is {size_mb:.1f} MB, but bots can only download files up to {limit_mb:g} MB "
        "from Telegram. Instead: put it on this machine and give its path (inside the allowed "
        "folders), share it from Google Drive and give the link, or give an http(s) URL."
    )


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
        return None if self.local_mode else PUBLIC_DOWNLOAD_LIMIT_MB

    def on_disk(self, file_path: str, token: str) -> Path | None:
        """The file a server's ``file_path`` names, on a disk colabot can read; None when it
        must be downloaded over HTTP (Telegram's own server).

        An absolute path (``--local``) is used as it is, or moved under ``local_dir`` from
        the bot's folder (named by its token) on. A relative one lies in that bot folder.
        """
        pure = PurePosixPath(file_path)
        if not pure.is_absolute() and not self.self_hosted:
            return None
        if pure.is_absolute():
            parts = pure.parts
            if self.local_dir is None:
                return Path(file_path)
            inner = parts[parts.index(token) :] if token in parts else parts[-2:]
            path = self.local_dir.joinpath(*inner)
        else:
            root = self.local_dir
            if root is None:
                return None
            path = root / token / pure
        # Checked as written, not resolved: the shared folder may well be a symlink or mount.
        if ".." in path.parts:
            return None
        return path


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

    async def fetch(self, attachment: Attachment, name: str) -> Path:
        """Download (or copy from the server's disk) into a fresh staging folder."""
        self.check_size(attachment, name)
        size = attachment.file_size or 0
        target = self.staging / secrets.token_hex(8) / name
        target.parent.mkdir(parents=True, exist_ok=True)
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
        on_disk = self.server.on_disk(file_path, self.token)
        if on_disk is not None:
            await self._copy(on_disk, target, name)
        else:
            await self._download(telegram_file, target, name)
        if size and target.stat().st_size != size:
            raise UploadError(name, "the download was incomplete; please send it again")
        return target

    async def _copy(self, source: Path, target: Path, name: str) -> None:
        try:
            await asyncio.to_thread(shutil.copyfile, source, target)
        except OSError:
            raise UploadError(
                name,
                "the Bot API server keeps this file on its own disk, and colabot cannot read "
                "it there: share the server's working folder with colabot and name it in "
                "telegram.local_files_dir",
            ) from None

    async def _download(self, telegram_file: object, target: Path, name: str) -> None:
        from telegram import File

        assert isinstance(telegram_file, File)
        try:
            await telegram_file.download_to_drive(target)
        except InvalidToken:
            # A self-hosted server answers 404 (reported as InvalidToken) for /file/ paths.
            raise UploadError(
                name,
                "this Bot API server does not serve file downloads: run telegram-bot-api with "
                "--local (telegram.local_mode = true), or share its working folder as "
                "telegram.local_files_dir",
            ) from None
        except TelegramError as exc:
            raise UploadError(name, f"the download failed ({exc}); please send it again") from None
