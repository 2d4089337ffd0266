"""Finding and checking the files a spaCy request names: zips unpacked, the config and the
training and evaluation data looked up in a folder, trained pipelines found, DocBins checked.
"""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Iterable
from pathlib import Path

from workers.errors import ArchiveError
from workers.inputs.archives import safe_extract, single_root
from workers.kinds.spacy.plan import BEST
from workers.kinds.spacy.tools.errors import ToolError

TRAIN_NAMES = ("train.spacy", "training.spacy")
DEV_NAMES = ("dev.spacy", "valid.spacy", "validation.spacy", "eval.spacy", "evaluation.spacy")
TRAIN_WORDS = ("train",)
DEV_WORDS = ("dev", "valid", "eval")


def materialise(source: Path, work: Path, name: str) -> Path:
    """A folder or file to read: zips are unpacked (safely) under ``work/name``."""
    if not source.exists():
        raise ToolError(f"{source.name} does not exist")
    if source.is_file() and source.suffix.lower() in (".zip", ".whl"):
        dest = work / name
        if dest.exists():
            shutil.rmtree(dest)
        try:
            return single_root(safe_extract(source, dest))
        except ArchiveError as exc:
            raise ToolError(f"the zip {exc}") from None
    return source


def _inside_pipeline(path: Path, root: Path) -> bool:
    """Whether ``path`` lies in a trained pipeline folder (one with a meta.json)."""
    for folder in path.parents:
        if (folder / "meta.json").is_file():
            return True
        if folder == root:
            return False
    return False


def _visible(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts
    return not any(p.startswith((".", "__MACOSX")) for p in parts)


def rank_candidates(
    paths: Iterable[Path], root: Path, names: tuple[str, ...], words: tuple[str, ...]
) -> list[Path]:
    """The best-ranked paths: an exact conventional name beats a name containing a word;
    shallower beats deeper. Several results mean a tie."""
    ranked: list[tuple[int, int, Path]] = []
    for path in paths:
        lowered = path.name.lower()
        if lowered in names:
            rank = 0
        elif any(word in path.stem.lower() for word in words):
            rank = 1
        else:
            continue
        ranked.append((rank, len(path.relative_to(root).parts), path))
    if not ranked:
        return []
    best = min((rank, depth) for rank, depth, _ in ranked)
    return sorted(path for rank, depth, path in ranked if (rank, depth) == best)


def find_config(root: Path) -> Path:
    """The training config in a folder: config.cfg preferred, the shallowest one."""
    found = [
        p
        for p in root.rglob("*.cfg")
        if p.is_file() and _visible(p, root) and not _inside_pipeline(p, root)
    ]
    if not found:
        raise ToolError(f"there is no spaCy config (.cfg) in {root.name}")
    best = rank_candidates(found, root, ("config.cfg",), ("",))
    if len(best) > 1:
        listed = ", ".join(str(p.relative_to(root)) for p in best)
        raise ToolError(f"{root.name} holds several configs ({listed}); give one as the config")
    return best[0]


def find_corpus(root: Path, names: tuple[str, ...], words: tuple[str, ...], what: str) -> Path:
    """The training or evaluation .spacy file in a folder, by conventional names."""
    found = [p for p in root.rglob("*.spacy") if _visible(p, root)]
    best = rank_candidates(found, root, names, words)
    if not best:
        raise ToolError(
            f"no {what} data in {root.name}: give {what}=<.spacy> or add {names[0]} to it"
        )
    if len(best) > 1:
        listed = ", ".join(str(p.relative_to(root)) for p in best)
        raise ToolError(f"{root.name} holds several {what} files ({listed}); give {what}=<file>")
    return best[0]


def find_pipeline(root: Path) -> Path:
    """A trained pipeline folder (config.cfg + meta.json) in or below ``root``; model-best
    is preferred in a training output folder."""
    if (root / "config.cfg").is_file() and (root / "meta.json").is_file():
        return root
    found = [
        meta.parent
        for meta in root.rglob("meta.json")
        if (meta.parent / "config.cfg").is_file() and _visible(meta, root)
    ]
    if not found:
        raise ToolError(f"{root.name} holds no trained spaCy pipeline (config.cfg + meta.json)")
    found.sort(key=lambda p: (p.name != BEST, len(p.parts), str(p)))
    return found[0]


def is_docbin_head(data: bytes) -> bool:
    """Whether the first bytes of a file look like a DocBin: zlib-compressed msgpack map
    whose first keys are ``version`` and ``attrs``."""
    try:
        head = zlib.decompressobj().decompress(data, 64)
    except zlib.error:
        return False
    return bool(head) and 0x80 <= head[0] <= 0x8F and (b"version" in head or b"attrs" in head)


def check_corpus(path: Path, what: str) -> None:
    """Refuse data spaCy cannot read as DocBins (other suffixes are left to the config)."""
    if path.is_dir():
        files = sorted(path.rglob("*.spacy"))
        if not files:
            raise ToolError(f"the {what} folder {path.name} has no .spacy files")
        for file in files[:200]:
            check_corpus(file, what)
        return
    if path.suffix.lower() != ".spacy":
        return
    with path.open("rb") as handle:
        head = handle.read(4096)
    if not head:
        raise ToolError(f"the {what} data {path.name} is empty")
    if not is_docbin_head(head):
        raise ToolError(
            f"the {what} data {path.name} is not a spaCy DocBin (.spacy) file; convert it "
            "with python -m spacy convert (or make it with DocBin.to_disk)"
        )


def data_files(paths: Iterable[Path]) -> list[Path]:
    """The files the given data paths hold, in a stable order: a file is itself, a folder
    its files (below it, sorted by their path inside it, hidden ones left out)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = [p for p in path.rglob("*") if p.is_file() and _visible(p, path)]
            files += sorted(inside, key=lambda p: p.relative_to(path).parts)
        elif path.is_file():
            files.append(path)
    return files
