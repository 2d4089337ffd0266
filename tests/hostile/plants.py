"""Planted code: modules named like colabot's packages, the frameworks' and the standard
library's, placed where a sent file puts them (beside a package's real files, in a step's
working folder). Each one, if it is ever imported, writes a marker file named after itself
into a folder of the test's: the test asserts that folder stays empty."""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterable
from pathlib import Path

PLANTED = (
    "workers",
    "bot",
    "sleap_nn",
    "sleap_io",
    "spacy",
    "weasel",
    "thinc",
    "torch",
    "numpy",
    "yaml",
    "wandb",
    "matplotlib",
    "pathlib",
    "json",
)
"""Packages and modules a step, ``/plot`` or a probe imports (``pathlib`` and ``json`` are the
standard library's: ``python -c`` would find a planted one in its working folder first)."""

# Planted as single files (``torch.py``); the others as packages (``workers/__init__.py``).
_SINGLE_FILES = frozenset({"torch", "yaml", "pathlib", "json"})


def planted_files(marks: Path, names: Iterable[str] = PLANTED) -> dict[str, bytes]:
    """The planted files by their relative names, each writing ``marks/<name>`` when run."""
    files = {}
    for name in names:
        code = f"open({str(marks / name)!r}, 'w').write('ran')\n".encode()
        files[f"{name}.py" if name in _SINGLE_FILES else f"{name}/__init__.py"] = code
    return files


def plant(folder: Path, marks: Path, names: Iterable[str] = PLANTED) -> Path:
    """Plant the modules in ``folder`` (made if missing); return it."""
    for relative, code in planted_files(marks, names).items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(code)
    return folder


def planted_zip(source: Path, dest: Path, marks: Path, names: Iterable[str] = PLANTED) -> Path:
    """A copy of the zip ``source`` with the planted files added beside its own."""
    shutil.copyfile(source, dest)
    with zipfile.ZipFile(dest, "a") as archive:
        for relative, code in planted_files(marks, names).items():
            archive.writestr(relative, code)
    return dest


def ran(marks: Path) -> list[str]:
    """The planted modules that were imported (their markers)."""
    return sorted(path.name for path in marks.iterdir()) if marks.is_dir() else []
