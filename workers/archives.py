"""Safe handling of zip archives: extraction that refuses hostile entries, and packing folders."""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from workers.errors import ArchiveError


@dataclass(frozen=True)
class ExtractLimits:
    """Bounds that stop zip bombs: total unpacked bytes, entry count, compression ratio."""

    max_total_bytes: int = 20 * 1024**3
    max_files: int = 10_000
    max_ratio: float = 200.0


MAX_NAME_BYTES = 255


def _member_target(archive: str, name: str, dest: Path) -> Path:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or (pure.parts and pure.parts[0].endswith(":")):
        raise ArchiveError(archive, f"entry {name!r} has an absolute path")
    if ".." in pure.parts:
        raise ArchiveError(archive, f"entry {name!r} points outside the archive folder")
    if "\x00" in name or any(len(part.encode()) > MAX_NAME_BYTES for part in pure.parts):
        shown = name[:60] + "…" if len(name) > 60 else name
        raise ArchiveError(archive, f"entry {shown!r} has a name no file system accepts")
    target = dest.joinpath(*[p for p in pure.parts if p not in ("", ".")])
    if not target.resolve().is_relative_to(dest.resolve()):
        raise ArchiveError(archive, f"entry {name!r} points outside the archive folder")
    return target


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
        relative = PurePosixPath(target.relative_to(dest).as_posix())
        parents = set(relative.parents) - {PurePosixPath(".")}
        clash = (relative in folders) if not info.is_dir() else (relative in files)
        if clash or parents & files:
            raise ArchiveError(name, f"entry {info.filename!r} is both a file and a folder")
        (folders if info.is_dir() else files).add(relative)
        folders |= parents
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ArchiveError(name, f"entry {info.filename!r} is a symbolic link")
        total += info.file_size
        if total > limits.max_total_bytes:
            raise ArchiveError(
                name, f"would unpack to more than {limits.max_total_bytes // 1024**2} MB"
            )
        if info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
            raise ArchiveError(
                name, f"entry {info.filename!r} is compressed suspiciously well (zip bomb?)"
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


def zip_folder(folder: Path, dest: Path) -> Path:
    """Pack a folder into ``dest`` (a .zip), entries relative to the folder's parent."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".zip.part")
    # Stored, not deflated: model weights barely compress, and packing sits on the path to
    # the "finished" message.
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for root, _dirs, files in os.walk(folder):
            for file in sorted(files):
                full = Path(root) / file
                archive.write(full, full.relative_to(folder.parent).as_posix())
    tmp.replace(dest)
    return dest


def single_root(folder: Path) -> Path:
    """The one sub-folder an archive unpacked into, or the folder itself."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return folder
