"""Private files: what colabot creates is readable by its own user only, whatever the umask,
and a name another local user could have placed beforehand (a link to their file, or to
one of ours they want overwritten) is never followed.

The data folder is 0700, its files 0600. Processes colabot starts inherit the same umask.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import BinaryIO

PRIVATE_UMASK = 0o077
"""The umask of colabot and of every process it starts: files 0600, folders 0700."""
FILE_MODE = 0o600
DIR_MODE = 0o700

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def use_private_umask() -> int:
    """Make this process (and what it starts from now on) create private files; return the
    umask it had."""
    return os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its missing parents) as private folders; an existing folder of
    ours is made private too. Returns ``path``."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    path.chmod(DIR_MODE)
    return path


def create_private(path: Path, *, append: bool = False, exclusive: bool = True) -> BinaryIO:
    """Open a new private file for writing without following a link at ``path``.

    ``exclusive`` refuses a name that exists already (FileExistsError): where another user
    could have placed it first. ``append`` opens an existing file of ours (never a link) to
    add to it.
    """
    flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW | _CLOEXEC
    if exclusive:
        flags |= os.O_EXCL
    flags |= os.O_APPEND if append else (0 if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        return os.fdopen(fd, "ab" if append else "wb")
    except BaseException:
        os.close(fd)
        raise


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` as a private file, replacing it at once (a fresh file with
    a random name, renamed over it: a link at ``path`` is replaced, not followed)."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with create_private(temp) as handle:
            handle.write(data)
        temp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def open_nofollow(path: Path) -> BinaryIO:
    """Open a file to read without following a link at ``path`` (OSError for a link): a
    file a job or a cluster node writes, which colabot reads back."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
    return os.fdopen(fd, "rb")


def is_plain_file(path: Path) -> bool:
    """Whether ``path`` is a regular file itself: a link there is neither followed nor
    counted, and nothing is opened (a planted pipe cannot block the reader). For flag
    files another process watches for, such as a stop file."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def touch_private(path: Path) -> None:
    """Create ``path`` as an empty private file, a flag another process watches for (see
    :func:`is_plain_file`). A plain file already there is kept; a link (or anything else)
    placed there is removed, never followed, and the file created in its place."""
    try:
        create_private(path).close()
    except FileExistsError:
        if is_plain_file(path):
            return
        path.unlink()
        create_private(path).close()


def open_to_change(path: Path) -> BinaryIO:
    """Open an existing file of ours to read and rewrite in place (a log cut short), never
    through a link placed at its name (OSError)."""
    fd = os.open(path, os.O_RDWR | _NOFOLLOW | _CLOEXEC)
    return os.fdopen(fd, "r+b")
