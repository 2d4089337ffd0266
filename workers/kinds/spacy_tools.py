"""The spaCy kind's job programs, run as ``python -m workers.kinds.spacy_tools <command>``.

``prepare`` turns a training request into a plan: it unpacks zips, finds the config and the
data, checks them (the config parses, overrides name real settings, .spacy files are DocBins,
a project's assets are in place), picks the device and, on /resume, writes a config that
starts from the saved weights. ``infer`` runs a trained pipeline over texts and writes JSONL.

spaCy itself is imported only by the example generator and by inference, and PyTorch is kept
out whenever the pipeline does not use it (it costs seconds and about 800 MB to import).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import hashlib
import importlib
import json
import random
import shlex
import shutil
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from workers.archives import safe_extract, single_root
from workers.errors import ArchiveError
from workers.kinds.spacy import (
    BEST,
    ERROR_PREFIX,
    MACHINE_PREFIX,
    TEXT_SUFFIXES,
    TrainPlan,
)

TRAIN_NAMES = ("train.spacy", "training.spacy")
DEV_NAMES = ("dev.spacy", "valid.spacy", "validation.spacy", "eval.spacy", "evaluation.spacy")
TRAIN_WORDS = ("train",)
DEV_WORDS = ("dev", "valid", "eval")
TORCH_MARKERS = ("torch", "transformer", "curated")
EXAMPLE_STEPS = 200
EXAMPLE_EVAL_FREQUENCY = 40
CUPY_HINT = 'pip install "spacy[cuda12x]"'


class ToolError(Exception):
    """A request the program refuses, with the reason in words for the chat."""


def emit(event: str, **data: Any) -> None:
    """Print one machine-readable event line for the kind, at once."""
    print(MACHINE_PREFIX + json.dumps({"event": event, **data}), flush=True)


def block_torch() -> None:
    """Make ``import torch`` fail, so spaCy and Thinc run without PyTorch."""
    sys.modules["torch"] = None  # type: ignore[assignment]


def needs_torch(config_text: str) -> bool:
    """Whether a pipeline config uses PyTorch (torch layers, transformers, its allocator)."""
    lowered = config_text.lower()
    return any(marker in lowered for marker in TORCH_MARKERS)


# --------------------------------------------------------------------------- devices


@dataclass(frozen=True)
class GpuProbe:
    """What CuPy can see: whether it loads, the GPUs, and why not when it cannot."""

    cupy: bool
    names: tuple[str, ...] = ()
    problem: str = ""

    @property
    def count(self) -> int:
        """How many GPUs CuPy sees."""
        return len(self.names)


def probe_gpu() -> GpuProbe:
    """Ask CuPy (as Thinc would) for GPUs, without importing spaCy."""
    try:
        cupy = importlib.import_module("cupy")
        importlib.import_module("cupyx")
    except ImportError:
        return GpuProbe(False, problem=f"CuPy is not installed (for the GPU: {CUPY_HINT})")
    except Exception as exc:
        return GpuProbe(False, problem=f"CuPy does not load ({type(exc).__name__}: {exc})")
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
        names = []
        for index in range(count):
            name = cupy.cuda.runtime.getDeviceProperties(index).get("name", b"GPU")
            names.append(name.decode() if isinstance(name, bytes) else str(name))
    except Exception as exc:
        return GpuProbe(True, problem=f"CuPy sees no GPU ({type(exc).__name__}: {exc})")
    return GpuProbe(True, tuple(names), "" if names else "CuPy sees no GPU")


def choose_device(request: str, probe: Callable[[], GpuProbe], doing: str) -> tuple[int, str]:
    """(spaCy's gpu id, a notice) for gpu=auto|cpu|N; ToolError when a GPU asked for is absent.

    ``doing`` starts the notice, e.g. "training".
    """
    request = request.strip().lower()
    if request == "cpu":
        return -1, f"{doing} on the CPU (gpu=cpu)"
    found = probe()
    if request == "auto":
        if found.count:
            return 0, f"{doing} on GPU 0 ({found.names[0]})"
        return -1, f"{doing} on the CPU: {found.problem}"
    wanted = int(request)
    if not found.cupy:
        raise ToolError(f"gpu={wanted} asks for a GPU, but {found.problem}; or use gpu=cpu")
    if wanted >= found.count:
        have = f"{found.count} GPU(s)" if found.count else f"no GPU ({found.problem})"
        raise ToolError(f"gpu={wanted} asks for GPU {wanted}, but CuPy sees {have}")
    return wanted, f"{doing} on GPU {wanted} ({found.names[wanted]})"


def device_name(gpu_id: int) -> str:
    """``GPU 0`` or ``the CPU`` for summaries."""
    return f"GPU {gpu_id}" if gpu_id >= 0 else "the CPU"


# ----------------------------------------------------------------------- finding files


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


# ----------------------------------------------------------------------------- configs


def parse_override_value(text: str) -> Any:
    """An override's value as spaCy reads it: JSON when it parses, else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def describe_config_error(exc: Exception) -> str:
    """A confection error in one line."""
    errors = getattr(exc, "errors", None) or []
    details = [
        f"{' -> '.join(str(p) for p in e.get('loc', []))}: {e.get('msg', '')}".strip(": ")
        for e in errors
        if isinstance(e, dict)
    ]
    if not details:
        desc = str(getattr(exc, "desc", "") or exc)
        details = [
            line.strip()
            for line in desc.splitlines()
            if line.strip() and not line.startswith(("Make sure", "file:", "'"))
        ]
    text = "; ".join(details[:3]) or type(exc).__name__
    return text if len(text) <= 300 else text[:299] + "…"


def unknown_override(config: Mapping[str, Any], key: str) -> str | None:
    """Why a dotted override key names no setting of the config, or None when it does."""
    parts = key.split(".")
    node: Any = config
    for depth, part in enumerate(parts):
        if not isinstance(node, Mapping) or part not in node:
            section = ".".join(parts[:depth]) or None
            options = list(node) if isinstance(node, Mapping) else []
            close = difflib.get_close_matches(part, options, n=1)
            hint = f" (did you mean {'.'.join([*parts[:depth], close[0]])}?)" if close else ""
            where = f"[{section}] has no setting {part!r}" if section else f"no [{part}] section"
            return f"unknown config key {key}: {where}{hint}"
        node = node[part]
    return None


def load_config(
    path: Path, overrides: Mapping[str, Any] | None = None, *, interpolate: bool
) -> Any:
    """A confection Config from a file; ToolError in words when it does not parse."""
    from confection import Config

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ToolError(f"the config {path.name} is not a text file") from None
    try:
        return Config().from_str(text, overrides=dict(overrides or {}), interpolate=interpolate)
    except Exception as exc:
        reason = describe_config_error(exc)
        raise ToolError(f"the config {path.name} does not parse: {reason}") from None


def section_exists(config: Mapping[str, Any], dotted: str) -> bool:
    """Whether ``corpora.train`` names a section of the config."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return isinstance(node, Mapping)


def check_config(
    path: Path, overrides: list[tuple[str, str]], train: Path, dev: Path
) -> Mapping[str, Any]:
    """Parse the config, check every override key and the corpus references; return it
    interpolated with the overrides."""
    raw = load_config(path, interpolate=False)
    for key, _value in overrides:
        problem = unknown_override(raw, key)
        if problem:
            raise ToolError(problem)
    if unknown_override(raw, "paths.train") or unknown_override(raw, "paths.dev"):
        raise ToolError(
            f"the config {path.name} has no [paths] train and dev settings, "
            "which colabot sets to the data"
        )
    values = {key: parse_override_value(value) for key, value in overrides}
    values.update({"paths.train": str(train), "paths.dev": str(dev)})
    config = load_config(path, values, interpolate=True)
    training = config.get("training", {})
    for name in ("train_corpus", "dev_corpus"):
        reference = training.get(name)
        if isinstance(reference, str) and not section_exists(config, reference):
            raise ToolError(
                f"the config's training.{name} refers to [{reference}], which it does not have"
            )
    return config  # type: ignore[no-any-return]


def write_resume_config(model: Path, dest: Path) -> Path:
    """A config that trains on from ``model``'s weights: every component is sourced from it.

    The base is the config the model was trained with (overrides included). The optimizer
    state and the step counter start again; spaCy keeps neither.
    """
    config = load_config(model / "config.cfg", interpolate=False)
    pipeline = list(config["nlp"]["pipeline"])
    config["components"] = {name: {"source": str(model), "component": name} for name in pipeline}
    vectors = config.get("paths", {}).get("vectors")
    if vectors not in (None, "null", ""):
        config["paths"]["vectors"] = str(model)
    config.to_disk(dest)
    return dest


# ------------------------------------------------------------------------------ example

PEOPLE = (
    "Alice Smith",
    "Bob Jones",
    "Carla Diaz",
    "David Brown",
    "Emma Stone",
    "Farid Khan",
    "Grace Lee",
    "Hiro Tanaka",
    "Ines Costa",
    "Jonas Berg",
)
PLACES = ("Paris", "London", "Berlin", "Madrid", "Rome", "Tokyo", "Boston", "Lagos", "Oslo")
LIKED = ("loved", "enjoyed", "liked", "adored")
DISLIKED = ("hated", "disliked", "loathed", "regretted")
TEMPLATES = (
    "{p} {v} the trip to {c} last year.",
    "Yesterday {p} {v} visiting {c}.",
    "In {c}, {p} {v} the food.",
    "{p} said that she {v} {c}.",
    "After a week in {c}, {p} {v} every minute.",
)
SAMPLE_TEXTS = (
    "Grace Lee loved the trip to Oslo last year.",
    "In Lagos, Jonas Berg hated the food.",
    "Yesterday Emma Stone enjoyed visiting Tokyo.",
    "After a week in Rome, Farid Khan regretted every minute.",
    "Ines Costa said that she adored Boston.",
)


@dataclass(frozen=True)
class ExampleSentence:
    """One generated sentence with its entity spans and whether it is positive."""

    text: str
    entities: tuple[tuple[int, int, str], ...]
    positive: bool


def example_sentences(count: int, seed: int) -> list[ExampleSentence]:
    """Sentences about people and places, each liked or disliked."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(count):
        person, place = rng.choice(PEOPLE), rng.choice(PLACES)
        positive = rng.random() < 0.5
        verb = rng.choice(LIKED if positive else DISLIKED)
        text = rng.choice(TEMPLATES).format(p=person, c=place, v=verb)
        spans = []
        for name, label in ((person, "PERSON"), (place, "GPE")):
            start = text.index(name)
            spans.append((start, start + len(name), label))
        sentences.append(ExampleSentence(text, tuple(sorted(spans)), positive))
    return sentences


def make_example(dest: Path) -> Path:
    """Write a small NER + text classification dataset, its config and sample texts."""
    import spacy
    from spacy.cli.init_config import init_config
    from spacy.tokens import DocBin

    dest.mkdir(parents=True, exist_ok=True)
    nlp = spacy.blank("en")
    for name, count, seed in (("train", 150, 1), ("dev", 40, 2)):
        docbin = DocBin()
        for sentence in example_sentences(count, seed):
            doc = nlp.make_doc(sentence.text)
            spans = [
                doc.char_span(start, end, label=label, alignment_mode="contract")
                for start, end, label in sentence.entities
            ]
            doc.ents = [span for span in spans if span is not None]
            doc.cats = {
                "POSITIVE": float(sentence.positive),
                "NEGATIVE": float(not sentence.positive),
            }
            docbin.add(doc)
        docbin.to_disk(dest / f"{name}.spacy")
    config = init_config(lang="en", pipeline=["ner", "textcat"], optimize="efficiency")
    config["training"]["max_steps"] = EXAMPLE_STEPS
    config["training"]["eval_frequency"] = EXAMPLE_EVAL_FREQUENCY
    config.to_disk(dest / "config.cfg")
    (dest / "texts.txt").write_text("\n".join(SAMPLE_TEXTS) + "\n", encoding="utf-8")
    return dest


# ----------------------------------------------------------------------------- projects


def choose_workflow(project: Mapping[str, Any], requested: str | None) -> tuple[str, list[str]]:
    """The workflow (or single command) to run: the requested one, else ``all``, else the
    first workflow."""
    workflows: dict[str, list[str]] = dict(project.get("workflows") or {})
    commands = [str(c.get("name")) for c in project.get("commands") or []]
    if requested:
        if requested in workflows:
            chosen = requested, list(workflows[requested])
        elif requested in commands:
            chosen = requested, [requested]
        else:
            raise ToolError(
                f"workflow={requested}: project.yml has no such workflow or command "
                f"(workflows: {', '.join(workflows) or 'none'}; commands: {', '.join(commands)})"
            )
    elif "all" in workflows:
        chosen = "all", list(workflows["all"])
    elif workflows:
        first = next(iter(workflows))
        chosen = first, list(workflows[first])
    else:
        raise ToolError(
            "project.yml has no workflows; choose a command with workflow=NAME "
            f"(commands: {', '.join(commands) or 'none'})"
        )
    unknown = [c for c in chosen[1] if c not in commands]
    if unknown:
        raise ToolError(f"workflow {chosen[0]} names unknown commands: {', '.join(unknown)}")
    if not chosen[1]:
        raise ToolError(f"workflow {chosen[0]} has no commands")
    return chosen


def checksum(path: Path) -> str:
    """weasel's checksum: md5 of a file, or of a folder's files in sorted order."""
    digest = hashlib.md5()  # noqa: S324 - matches the checksums in project.yml
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        with file.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def asset_problems(assets: list[Mapping[str, Any]], root: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a project's assets: missing ones cannot be fetched offline."""
    errors: list[str] = []
    warnings: list[str] = []
    for asset in assets:
        if asset.get("extra"):
            continue
        dest = str(asset.get("dest", ""))
        path = root / dest
        if path.exists():
            expected = asset.get("checksum")
            if expected and checksum(path) != expected:
                warnings.append(f"asset {dest} does not match its checksum in project.yml")
            continue
        git = asset.get("git")
        if asset.get("url"):
            errors.append(
                f"the asset {dest} is missing and would need the internet (url: {asset['url']}); "
                f"put it at {dest} in the project folder and try again"
            )
        elif isinstance(git, Mapping):
            errors.append(
                f"the asset {dest} is missing and would need the internet (git: "
                f"{git.get('repo')} {git.get('path', '')}); put it at {dest} and try again"
            )
        else:
            errors.append(f"the asset {dest} is missing; put it at {dest} and try again")
    return errors, warnings


def missing_dependencies(project: Mapping[str, Any], chosen: list[str], root: Path) -> list[str]:
    """Dependencies of the chosen commands that do not exist and no earlier command makes."""
    commands = {str(c.get("name")): c for c in project.get("commands") or []}
    made: set[str] = set()
    problems = []
    for name in chosen:
        command = commands[name]
        for dep in command.get("deps") or []:
            if dep not in made and not (root / dep).exists():
                problems.append(f"project command {name} needs {dep}, which is missing")
        made.update(command.get("outputs") or [])
        made.update(command.get("outputs_no_cache") or [])
    return problems


def declared_outputs(project: Mapping[str, Any], chosen: list[str]) -> list[str]:
    """The outputs the chosen commands declare, in order, without repeats."""
    commands = {str(c.get("name")): c for c in project.get("commands") or []}
    found: dict[str, None] = {}
    for name in chosen:
        for key in ("outputs", "outputs_no_cache"):
            for output in commands[name].get(key) or []:
                found[str(output)] = None
    return list(found)


def load_project(root: Path, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """project.yml, validated and with its variables filled in (weasel's own rules)."""
    from weasel.schemas import ProjectConfigSchema, validate  # type: ignore[import-untyped]
    from weasel.util.config import substitute_project_variables  # type: ignore[import-untyped]

    raw = read_project_yml(root)
    errors = validate(ProjectConfigSchema, raw)
    if errors:
        raise ToolError("project.yml is not valid: " + "; ".join(errors[:3]))
    unknown = [k for k in overrides if k.split(".", 1)[1] not in (raw.get("vars") or {})]
    if unknown:
        known = ", ".join(f"vars.{v}" for v in raw.get("vars") or {}) or "none"
        raise ToolError(f"project.yml has no variable {unknown[0]} (it has: {known})")
    try:
        return dict(substitute_project_variables(raw, dict(overrides)))
    except Exception as exc:
        reason = describe_config_error(exc)
        raise ToolError(f"project.yml variables do not resolve: {reason}") from None


def override_string(values: Iterable[tuple[str, str]]) -> str:
    """``--a.b 1 --c.d 'x y'`` for the *_CONFIG_OVERRIDES environment variables."""
    return " ".join(f"--{key} {shlex.quote(value)}" for key, value in values)


# ------------------------------------------------------------------------------ prepare


def prepare(args: argparse.Namespace) -> TrainPlan:
    """Check a training request and decide how to run it."""
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    overrides = [_split_override(text) for text in args.override]
    if args.example:
        emit("stage", text="generating the example data and config")
        block_torch()
        root = make_example(work / "example")
    else:
        emit("stage", text="checking the config and data")
        root = materialise(args.config, work, "config-input")
    if root.is_file() and root.name == "project.yml":
        root = root.parent
    if root.is_dir() and (root / "project.yml").is_file():
        return prepare_project(args, root, overrides)
    if args.workflow:
        raise ToolError("workflow= is for spaCy projects, and this input has no project.yml")
    return prepare_config(args, root, overrides)


def prepare_config(
    args: argparse.Namespace, root: Path, overrides: list[tuple[str, str]]
) -> TrainPlan:
    """The plan for training from a config (a file, or a folder with config and data)."""
    folder = root if root.is_dir() else None
    config = find_config(root) if folder else root
    if config.suffix.lower() != ".cfg":
        raise ToolError(f"{config.name} is not a spaCy config (.cfg), folder or zip")
    train = _corpus(args.train, folder, args.work, "train")
    dev = _corpus(args.dev, folder, args.work, "dev")
    for key, value in (("max_steps", args.max_steps), ("eval_frequency", args.eval_frequency)):
        if value is not None:
            overrides.append((f"training.{key}", str(value)))
    parsed = check_config(config, overrides, train, dev)
    if args.package_dir is not None:
        args.package_dir.mkdir(parents=True, exist_ok=True)
    gpu_id, note = choose_device(args.gpu, probe_gpu, "training")
    plan = TrainPlan(
        mode="config",
        notes=[note],
        device=device_name(gpu_id),
        gpu_id=gpu_id,
        config=str(config),
        train=str(train),
        dev=str(dev),
        overrides=[[key, value] for key, value in overrides],
        output=str(args.output),
        # Relative paths in a config (vectors, code) are read from where spaCy runs.
        cwd=str(folder or config.parent),
        example_texts=str(root / "texts.txt") if args.example else "",
    )
    if args.example:
        steps = parsed.get("training", {}).get("max_steps")
        plan.notes.append(
            f"example: {steps} steps of NER (PERSON, GPE) and text classification "
            "(POSITIVE, NEGATIVE) on 150 generated sentences"
        )
    if args.resume_from is not None:
        plan.config = str(_resume(args.resume_from, args.work))
        plan.resumed_from = str(args.resume_from)
        plan.notes.append(
            "continuing from the weights of the earlier model-last; spaCy cannot keep the "
            "optimizer state, so the optimizer and the step count start again"
        )
    plan.block_torch = not needs_torch(
        Path(plan.config).read_text(encoding="utf-8") + str(overrides)
    )
    return plan


def _corpus(given: Path | None, folder: Path | None, work: Path, what: str) -> Path:
    if given is not None:
        path = materialise(given, work, f"{what}-input").resolve()
    elif folder is not None:
        names, words = (TRAIN_NAMES, TRAIN_WORDS) if what == "train" else (DEV_NAMES, DEV_WORDS)
        path = find_corpus(folder, names, words, what).resolve()
    else:
        raise ToolError(f"no {what} data: give {what}=<.spacy file>")
    check_corpus(path, what)
    return path


def _resume(model: Path, work: Path) -> Path:
    """Copy the saved model out of harm's way and write a config that starts from it."""
    if not (model / "config.cfg").is_file():
        raise ToolError(f"the checkpoint {model.name} has no config.cfg, so it cannot be resumed")
    copy = work / "resume-model"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(model, copy)
    return write_resume_config(copy, work / "resume.cfg")


def prepare_project(
    args: argparse.Namespace, source: Path, overrides: list[tuple[str, str]]
) -> TrainPlan:
    """The plan for running a spaCy project's workflow, in a copy of the project folder."""
    bad = [key for key, _ in overrides if not key.startswith("vars.")]
    if bad:
        raise ToolError(f"{bad[0]}: in a spaCy project only vars.NAME=value settings can be given")
    project_dir = args.work / "project"
    notes = []
    # A copy left by an earlier attempt holds the finished commands' outputs; else the
    # source is checked first, so nothing is copied for a project that cannot run.
    checked = project_dir if project_dir.exists() else source
    if checked == project_dir:
        notes.append("continuing the project: commands that already finished are skipped")
    var_values = dict(overrides)
    gpu_id, device_note = _project_device(args.gpu, checked, var_values)
    project = load_project(checked, {k: parse_override_value(v) for k, v in var_values.items()})
    workflow, commands = choose_workflow(project, args.workflow)
    errors, warnings = asset_problems(list(project.get("assets") or []), checked)
    errors += missing_dependencies(project, commands, checked)
    if errors:
        raise ToolError("; ".join(errors[:3]))
    if checked != project_dir:
        shutil.copytree(source, project_dir, ignore_dangling_symlinks=True)
    chosen = "" if args.workflow else " (the default; choose another with workflow=NAME)"
    notes += [f"running the project's {workflow}{chosen}: {', '.join(commands)}", device_note]
    notes += warnings
    spacy_overrides = [
        (f"training.{key}", str(value))
        for key, value in (("max_steps", args.max_steps), ("eval_frequency", args.eval_frequency))
        if value is not None
    ]
    return TrainPlan(
        mode="project",
        notes=notes,
        device=device_name(gpu_id),
        gpu_id=gpu_id,
        block_torch=False,
        project_dir=str(project_dir),
        workflow=workflow,
        commands=commands,
        project_outputs=declared_outputs(project, commands),
        env={
            "WEASEL_CONFIG_OVERRIDES": override_string(var_values.items()),
            "SPACY_CONFIG_OVERRIDES": override_string(spacy_overrides),
        },
    )


def _project_device(request: str, root: Path, var_values: dict[str, str]) -> tuple[int, str]:
    """The device for a project: set through its ``gpu_id`` variable when it has one
    (``var_values`` gains it), else left to the project."""
    if "vars.gpu_id" in var_values:
        return -1, f"the project runs with vars.gpu_id={var_values['vars.gpu_id']}"
    if "gpu_id" not in (read_project_yml(root).get("vars") or {}):
        return -1, "the project picks its device itself (its project.yml has no gpu_id var)"
    gpu_id, note = choose_device(request, probe_gpu, "the project runs")
    var_values["vars.gpu_id"] = str(gpu_id)
    return gpu_id, f"{note} (vars.gpu_id={gpu_id})"


def read_project_yml(root: Path) -> dict[str, Any]:
    """The raw project.yml of a project folder; ToolError when it does not parse."""
    import srsly  # type: ignore[import-untyped]

    try:
        raw = srsly.read_yaml(root / "project.yml")
    except Exception as exc:
        raise ToolError(f"project.yml does not parse: {exc}") from None
    if not isinstance(raw, dict):
        raise ToolError("project.yml does not describe a project")
    return raw


def _split_override(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    return key, value


# ---------------------------------------------------------------------------- inference


@dataclass(frozen=True)
class TextRecord:
    """One input to annotate: its id, and its text or why it could not be read."""

    id: Any
    text: str = ""
    error: str = ""


def text_records(lines: Iterable[str], jsonl: bool, text_key: str) -> Iterator[TextRecord]:
    """Records from the lines of a .txt (one text per line) or .jsonl file; blank lines skip.

    A .jsonl line's id is its ``id`` field when it has one, else the line number.
    """
    for number, line in enumerate(lines, 1):
        stripped = line.rstrip("\r\n")
        if not stripped.strip():
            continue
        if not jsonl:
            yield TextRecord(number, stripped)
            continue
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            yield TextRecord(number, error=f"line {number} is not JSON: {exc}")
            continue
        if not isinstance(data, dict) or not isinstance(data.get(text_key), str):
            yield TextRecord(number, error=f"line {number} has no {text_key!r} text")
            continue
        yield TextRecord(data.get("id", number), data[text_key])


def count_records(path: Path) -> int:
    """Non-blank lines of a text file (the docs a .txt or .jsonl file holds)."""
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


@dataclass
class PredictionStats:
    """Counts over the predictions written, and the first few rows as a sample."""

    docs: int = 0
    errors: int = 0
    entities: Counter[str] = field(default_factory=Counter)
    top_categories: Counter[str] = field(default_factory=Counter)
    sample: list[dict[str, Any]] = field(default_factory=list)
    first_error: str = ""

    def add(self, row: Mapping[str, Any]) -> None:
        """Count one output row."""
        if "error" in row:
            self.errors += 1
            self.first_error = self.first_error or f"{row.get('id')}: {row['error']}"
            return
        if len(self.sample) < 3:
            self.sample.append(dict(row))
        self.docs += 1
        self.entities.update(str(e["label"]) for e in row.get("entities") or [])
        cats = dict(row.get("cats") or {})
        if cats:
            self.top_categories[max(cats, key=lambda k: float(cats[k]))] += 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "docs": self.docs,
            "errors": self.errors,
            "entities": dict(self.entities),
            "top_categories": dict(self.top_categories),
            "sample": self.sample,
            "first_error": self.first_error,
        }


def prediction_row(record: TextRecord, doc: Any) -> dict[str, Any]:
    """The JSONL row for one annotated doc (or the record's error)."""
    if record.error:
        return {"id": record.id, "error": record.error}
    return {
        "id": record.id,
        "text": doc.text,
        "entities": [
            {"text": e.text, "label": e.label_, "start_char": e.start_char, "end_char": e.end_char}
            for e in doc.ents
        ],
        "cats": {k: round(float(v), 6) for k, v in doc.cats.items()},
    }


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


def run_inference(args: argparse.Namespace) -> dict[str, Any]:
    """Annotate the texts with the model; write JSONL rows; return the stats."""
    texts: Path = args.texts
    suffix = texts.suffix.lower()
    if texts.is_dir() or suffix not in TEXT_SUFFIXES:
        raise ToolError(f"{texts.name}: texts must be a .txt, .jsonl or .spacy file")
    model = find_pipeline(materialise(args.model, args.work, "model-input"))
    if not needs_torch((model / "config.cfg").read_text(encoding="utf-8")):
        block_torch()
    gpu_id, note = choose_device(args.gpu, probe_gpu, "inference runs")
    emit("device", note=note)
    emit("stage", text=f"loading the pipeline {model.name}")
    import spacy
    from thinc.api import require_gpu

    if gpu_id >= 0:
        require_gpu(gpu_id)
    nlp = spacy.load(model)
    records, total = _records(texts, suffix, args.text_key, nlp)
    stats = PredictionStats()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as out:
        _annotate(nlp, records, total, args.batch_size, out, stats)
    return stats.to_dict()


def _records(texts: Path, suffix: str, text_key: str, nlp: Any) -> tuple[Iterator[TextRecord], int]:
    if suffix == ".spacy":
        from spacy.tokens import DocBin

        try:
            docbin = DocBin().from_disk(texts)
        except ValueError:
            raise ToolError(f"{texts.name} is not a spaCy DocBin (.spacy) file") from None
        # Only the text goes on: the DocBin's own annotations must not leak into predictions.
        docs = docbin.get_docs(nlp.vocab)
        return (TextRecord(i, doc.text) for i, doc in enumerate(docs)), len(docbin)
    jsonl = suffix in (".jsonl", ".ndjson")
    return _file_records(texts, jsonl, text_key), count_records(texts)


def _file_records(path: Path, jsonl: bool, text_key: str) -> Iterator[TextRecord]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        yield from text_records(handle, jsonl, text_key)


def _annotate(
    nlp: Any,
    records: Iterator[TextRecord],
    total: int,
    batch_size: int,
    out: IO[str],
    stats: PredictionStats,
) -> None:
    emit("docs", done=0, total=total)
    done, last = 0, time.monotonic()
    pairs = ((record.text, record) for record in records)
    for doc, record in nlp.pipe(pairs, as_tuples=True, batch_size=batch_size):
        row = prediction_row(record, doc)
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        stats.add(row)
        done += 1
        if time.monotonic() - last >= 0.5:
            emit("docs", done=done, total=total)
            last = time.monotonic()
    emit("docs", done=done, total=max(total, done))


# -------------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spacy_tools")
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="check a training request and plan it")
    prep.add_argument("--plan", type=Path, required=True)
    prep.add_argument("--work", type=Path, required=True)
    prep.add_argument("--output", type=Path, required=True)
    prep.add_argument("--gpu", default="auto")
    prep.add_argument("--example", action="store_true")
    prep.add_argument("--config", type=Path)
    prep.add_argument("--train", type=Path)
    prep.add_argument("--dev", type=Path)
    prep.add_argument("--max-steps", type=int)
    prep.add_argument("--eval-frequency", type=int)
    prep.add_argument("--workflow")
    prep.add_argument("--override", action="append", default=[])
    prep.add_argument("--resume-from", type=Path)
    prep.add_argument("--package-dir", type=Path)
    infer = commands.add_parser("infer", help="annotate texts with a trained pipeline")
    infer.add_argument("--model", type=Path, required=True)
    infer.add_argument("--texts", type=Path, required=True)
    infer.add_argument("--out", type=Path, required=True)
    infer.add_argument("--stats", type=Path, required=True)
    infer.add_argument("--work", type=Path, required=True)
    infer.add_argument("--gpu", default="auto")
    infer.add_argument("--batch-size", type=int, default=64)
    infer.add_argument("--text-key", default="text")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 when the request is refused)."""
    args = _parser().parse_args(argv)
    for name, value in vars(args).items():
        if isinstance(value, Path):
            setattr(args, name, value.resolve())
    try:
        if args.command == "prepare":
            if not args.example and args.config is None:
                raise ToolError("no config: give a .cfg file, a folder or a zip")
            plan = prepare(args)
            _write_json(args.plan, plan.to_dict())
            print(f"colabot-spacy: plan written to {args.plan}", flush=True)
        else:
            stats = run_inference(args)
            _write_json(args.stats, stats)
            print(f"colabot-spacy: wrote {stats['docs']} predictions to {args.out}", flush=True)
    except ToolError as exc:
        print(ERROR_PREFIX + str(exc), flush=True)
        return 2
    return 0


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
