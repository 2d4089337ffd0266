"""Confinement: the one rule for whether a path stays inside a folder.

Every path colabot is handed from outside goes through here: a path typed in the chat
(:func:`confine`), and a relative name an input or a job supplies (an archive entry, a file
a SLEAP package's ``jobs.yaml`` names, a file in a Drive folder, an output a job's
``result.json`` reports) joined under its folder (:func:`join_inside`). Symbolic links are
followed before the check, so a link cannot lead out.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path, PurePath, PurePosixPath

from workers.errors import InputError
from workers.safety.names import MAX_NAME_BYTES, has_control, shown


class Refused(ValueError):
    """A path that would leave its folder, or could not be a file name; ``reason`` says why
    in words (callers put it in their own error)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def inside(path: Path, roots: Iterable[Path]) -> bool:
    """Whether ``path`` is one of ``roots`` or lies below one, both with symbolic links
    followed. A path that cannot be resolved (a loop of links) is not inside."""
    try:
        real = path.resolve()
        return any(real.is_relative_to(root.resolve()) for root in roots)
    except (OSError, RuntimeError):  # RuntimeError: a loop of links, before Python 3.13
        return False


def relative_parts(name: str | PurePath) -> tuple[str, ...]:
    """The parts of a relative name from an input or a job; Refused for an absolute path (or
    a drive letter), ``..``, control characters, or a part longer than a file name can be."""
    text = str(name).replace("\\", "/")
    pure = PurePosixPath(text)
    if not text.strip():
        raise Refused("it is empty")
    if pure.is_absolute() or (pure.parts and pure.parts[0].endswith(":")):
        raise Refused("it is an absolute path")
    if ".." in pure.parts:
        raise Refused("it points outside its folder ('..')")
    if "\x00" in text or has_control(text):
        raise Refused("it holds control characters")
    if any(len(part.encode()) > MAX_NAME_BYTES for part in pure.parts):
        raise Refused(f"a part of it is longer than {MAX_NAME_BYTES} bytes")
    parts = tuple(p for p in pure.parts if p not in ("", "."))
    if not parts:
        raise Refused("it names the folder itself")
    return parts


def join_inside(root: Path, name: str | PurePath) -> Path:
    """``root / name`` for a relative ``name`` from an input or a job, Refused unless it
    stays inside ``root`` with symbolic links followed."""
    target = root.joinpath(*relative_parts(name))
    if not inside(target, [root]):
        raise Refused("it leads outside its folder through a symbolic link")
    return target


def confine(text: str, roots: Iterable[Path]) -> Path:
    """Resolve a typed path inside the allowed roots, or raise InputError.

    ``..`` is refused outright; symlinks are followed and must still land inside a root.
    Relative paths are looked up in each root in turn.
    """
    roots = tuple(roots)
    if not roots:
        raise InputError(shown(text), "no input folders are allowed (worker.input_roots is empty)")
    if "\x00" in text or has_control(text):
        raise InputError(shown(text), "the path holds control characters")
    try:
        return _confine(text, roots)
    except OSError as exc:
        raise InputError(shown(text), f"this path cannot be used: {exc.strerror or exc}") from None
    except RuntimeError:  # a loop of links, before Python 3.13
        raise InputError(
            shown(text), "this path cannot be used: its links go round in a loop"
        ) from None


def _confine(text: str, roots: tuple[Path, ...]) -> Path:
    raw = Path(text).expanduser()
    if ".." in raw.parts:
        raise InputError(text, "paths may not contain '..'")
    if any(len(part.encode()) > MAX_NAME_BYTES for part in raw.parts):
        raise InputError(
            text[:80] + "…", f"a part of this path is longer than {MAX_NAME_BYTES} bytes"
        )
    real_roots = [root.expanduser().resolve() for root in roots]
    allowed = ", ".join(str(r) for r in real_roots)
    outside = InputError(text, f"this path is outside the allowed input folders ({allowed})")
    if raw.is_absolute():
        real = raw.resolve()
        if not inside(real, real_roots):
            raise outside
        if not real.exists():
            raise InputError(text, "no such file or folder")
        return real
    resolved = [(root / raw).resolve() for root in real_roots]
    for real in resolved:
        if real.exists() and inside(real, real_roots):
            return real
    if any(real.exists() for real in resolved):
        raise outside
    raise InputError(text, "no such file or folder in the allowed input folders")


def links_out_of(root: Path) -> Callable[[str, list[str]], set[str]]:
    """An ``ignore`` for :func:`shutil.copytree` that leaves out every link under ``root``
    leading out of it (a job could plant one to a file of the bot's user); links that stay
    inside are copied as what they point to."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        base = Path(folder)
        return {
            name for name in names if (base / name).is_symlink() and not inside(base / name, [root])
        }

    return ignore


def copy_folder(source: Path, dest: Path) -> None:
    """Copy a folder colabot did not write itself (a job's checkpoint folder, say) to a new
    ``dest``, leaving out links that lead out of it and links to nothing."""
    shutil.copytree(source, dest, ignore=links_out_of(source), ignore_dangling_symlinks=True)
