"""Safe handling of zip archives: extraction that refuses hostile entries, and packing folders."""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from workers.errors import ArchiveError
from workers.safety.names import shown
from workers.safety.paths import Refused, inside, join_inside


@dataclass(frozen=True)
class ExtractLimits:
    """Bounds that stop zip bombs: total unpacked bytes, entry count, compression ratio."""

    max_total_bytes: int = 20 * 1024**3
    max_files: int = 10_000
    max_ratio: float = 200.0


def _quoted(name: str) -> str:
    """An entry's name for a message: one line, at most 60 characters."""
    short = name[:60] + "…" if len(name) > 60 else name
    return f"'{shown(short)}'"


def _refusal(reason: str) -> str:
    """What is wrong with an entry whose name :func:`join_inside` refused, in the words the
    archive messages use (the reason itself when it is none of these)."""
    if "'..'" in reason or "symbolic link" in reason:
        return "points outside the archive folder"
    if "absolute" in reason:
        return "has an absolute path"
    if "control characters" in reason:
        return "has a control character (such as a line break) in its name"
    return f"has a name no file system accepts ({reason})"


def _member_target(archive: str, name: str, dest: Path) -> Path | None:
    """Where an entry unpacks under ``dest``; None for an entry that names ``dest`` itself
    (``./``). ArchiveError for a name that would leave ``dest`` or cannot be a file."""
    try:
        return join_inside(dest, name)
    except Refused as exc:
        if not PurePosixPath(name.replace("\\", "/")).parts:
            return None
        raise ArchiveError(archive, f"entry {_quoted(name)} {_refusal(exc.reason)}") from None


def check_zip(path: Path, dest: Path, limits: ExtractLimits) -> list[zipfile.ZipInfo]:
    """Check every entry before anything is written; return the entries to extract."""
    name = path.name
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ArchiveError(name, "not a valid zip file") from None
    except OSError as exc:
        raise ArchiveError(name, f"cannot be read: {exc.strerror or exc}") from None
    with archive:
        infos = archive.infolist()
    if len(infos) > limits.max_files:
        raise ArchiveError(name, f"has {len(infos)} entries; the limit is {limits.max_files}")
    total = 0
    files: set[PurePosixPath] = set()
    folders: set[PurePosixPath] = set()
    for info in infos:
        target = _member_target(name, info.filename, dest)
        if target is None:
            continue
        relative = PurePosixPath(target.relative_to(dest).as_posix())
        parents = set(relative.parents) - {PurePosixPath(".")}
        clash = (relative in folders) if not info.is_dir() else (relative in files)
        if clash or parents & files:
            raise ArchiveError(name, f"entry {_quoted(info.filename)} is both a file and a folder")
        (folders if info.is_dir() else files).add(relative)
        folders |= parents
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ArchiveError(name, f"entry {_quoted(info.filename)} is a symbolic link")
        total += info.file_size
        if total > limits.max_total_bytes:
            raise ArchiveError(
                name, f"would unpack to more than {limits.max_total_bytes // 1024**2} MB"
            )
        if info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
            raise ArchiveError(
                name, f"entry {_quoted(info.filename)} is compressed suspiciously well (zip bomb?)"
            )
    return infos


def safe_extract(path: Path, dest: Path, limits: ExtractLimits | None = None) -> Path:
    """Extract a zip into ``dest`` after checking every entry; return ``dest``.

    Sizes are checked again while writing, since entry headers can lie.
    """
    limits = limits or ExtractLimits()
    infos = check_zip(path, dest, limits)
    dest.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in infos:
                target = _member_target(path.name, info.filename, dest)
                if target is None:
                    continue
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, target.open("wb") as out:
                    while block := src.read(1024 * 1024):
                        written += len(block)
                        if written > limits.max_total_bytes:
                            raise ArchiveError(path.name, "unpacks to more than it claims")
                        out.write(block)
    except zipfile.BadZipFile as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise ArchiveError(path.name, f"is corrupt: {exc}") from None
    except ArchiveError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except OSError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise ArchiveError(path.name, f"cannot be unpacked: {exc.strerror or exc}") from None
    return dest


def zip_folder(folder: Path, dest: Path, *, skipped: list[Path] | None = None) -> Path:
    """Pack a folder into ``dest`` (a .zip), entries relative to the folder's parent.

    A symbolic link inside that leads out of ``folder`` is left out, never followed (a job
    could plant one to a file of the bot's user); it is added to ``skipped`` when given.
    Links to folders are not descended into.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".zip.part")
    # Stored, not deflated: model weights barely compress, and packing sits on the path to
    # the "finished" message.
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for root, dirs, files in os.walk(folder):
            for entry in sorted(dirs):
                full = Path(root) / entry
                if full.is_symlink() and not inside(full, [folder]) and skipped is not None:
                    skipped.append(full)
            for file in sorted(files):
                full = Path(root) / file
                if full.is_symlink() and not inside(full, [folder]):
                    if skipped is not None:
                        skipped.append(full)
                    continue
                if not full.exists():
                    continue  # a link to nothing: there is nothing to pack
                archive.write(full, full.relative_to(folder.parent).as_posix())
    tmp.replace(dest)
    return dest


def single_root(folder: Path) -> Path:
    """The one sub-folder an archive unpacked into, or the folder itself."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return folder
