"""Where the emulator keeps file contents: ``bot/`` for what the bot sends, ``user/`` for
what people upload, and a staging folder for uploads still being received."""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
from pathlib import Path
from typing import Literal

Owner = Literal["bot", "user"]
# The server's own naming of the files it keeps: a number, then the name's plain characters.
_PLAIN = re.compile(r"[^A-Za-z0-9._-]+")
_HEAD_BYTES = 256 * 1024


class FileStore:
    """File contents under one root folder; every method does its disk work off the loop."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging = root / ".incoming"
        self._numbers = itertools.count(1)

    async def prepare(self) -> None:
        """Create the folders."""
        for folder in (self.staging, self.root / "bot", self.root / "user"):
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)

    def _destination(self, owner: Owner, filename: str | None) -> Path:
        return self.root / owner / f"{next(self._numbers):04d}-{stored_name(filename)}"

    async def keep_upload(self, staged: Path, owner: Owner, filename: str | None) -> Path:
        """Move a staged upload to its permanent place and return that path."""
        target = self._destination(owner, filename)
        await asyncio.to_thread(staged.replace, target)
        return target

    async def copy_in(self, source: Path | bytes, owner: Owner, filename: str | None) -> Path:
        """Store a copy of a local file (or of raw bytes) and return its path."""
        target = self._destination(owner, filename)
        if isinstance(source, bytes):
            await asyncio.to_thread(target.write_bytes, source)
        else:
            await asyncio.to_thread(shutil.copyfile, source, target)
        return target

    async def head(self, path: Path) -> bytes:
        """Return the first bytes of a file, enough to recognise an image."""
        return await asyncio.to_thread(_read_head, path)

    async def clear_staging(self) -> None:
        """Remove uploads that were never kept."""
        await asyncio.to_thread(shutil.rmtree, self.staging, True)


def _read_head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(_HEAD_BYTES)


def stored_name(filename: str | None) -> str:
    """The last part of a client's file name, reduced to plain characters (``file`` when
    nothing is left): how the server names what it keeps, never a path."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    return _PLAIN.sub("_", base).strip("._") or "file"
