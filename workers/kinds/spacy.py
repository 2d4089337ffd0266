"""The ``spacy`` kind: train spaCy pipelines (from a config, a folder, a zip or a spaCy project)
and run them over texts.

This module is imported by the bot process, so it never imports spaCy: the work happens in
``workers.kinds.spacy_tools`` (prepare, inference), ``workers.kinds.spacy_train`` (spaCy's own
command line) and ``workers.kinds.spacy_logger`` (progress lines during training). The kind
plans those subprocesses and reads their lines and files; everything else here is pure parsing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any

from workers.errors import SpecError
from workers.jobs import Action, JobSpec, ParamValue, Progress
from workers.kinds.base import (
    InputSlot,
    JobContext,
    Outcome,
    Output,
    Param,
    Step,
    coerce_param,
    validate_common,
)
from workers.progress import StepCounter

MACHINE_PREFIX = "COLABOT_SPACY "
"""Lines starting with this carry one JSON event from the job programs to the kind."""
ERROR_PREFIX = "colabot-spacy: error: "
"""Lines starting with this explain why a job program refused to go on."""

TOOLS_MODULE = "workers.kinds.spacy_tools"
CLI_MODULE = "workers.kinds.spacy_train"
LOGGER_NAME = "colabot.spacy_progress.v1"
LOGGER_FILE = Path(__file__).resolve().with_name("spacy_logger.py")

PLAN_FILE = "spacy-plan.json"
INFERENCE_STATS = "inference.json"
TRAINING_DIR = "training"
TRAINING_LOG = "training-log.jsonl"
PACKAGE_DIR = "package"
PREDICTIONS = "predictions.jsonl"
BEST, LAST = "model-best", "model-last"

# Overrides the machine's environment may hold would beat the ones colabot passes; the colour
# codes and icons of spaCy's console output only get in the way of reading it.
STEP_ENV = {
    "SPACY_CONFIG_OVERRIDES": "",
    "WEASEL_CONFIG_OVERRIDES": "",
    "WASABI_NO_PRETTY": "1",
    "ANSI_COLORS_DISABLED": "1",
}
TEXT_SUFFIXES = (".txt", ".jsonl", ".ndjson", ".spacy")
OVERRIDE_KEY = re.compile(r"[A-Za-z_][\w-]*(?:\.[\w-]+)+")
RESERVED_OVERRIDES = {
    "paths.train": "give the training data as the train= input",
    "paths.dev": "give the evaluation data as the dev= input",
    "training.logger": "colabot sets the training logger to report progress",
}
SAME_AS_PARAM = {"training.max_steps": "max_steps", "training.eval_frequency": "eval_frequency"}
DEFAULT_SCORE_KEYS = (
    "ents_f",
    "ents_p",
    "ents_r",
    "cats_score",
    "tag_acc",
    "pos_acc",
    "morph_acc",
    "dep_uas",
    "dep_las",
    "sents_f",
    "lemma_acc",
    "spans_sc_f",
)

GPU_PARAM = Param(str, "auto", "auto (the GPU when CuPy and a GPU are there), cpu, or a GPU number")
TRAIN_INPUTS = (
    InputSlot(
        "config",
        "a spaCy config (.cfg); or a folder or zip with a config and its data, or with a spaCy "
        "project (project.yml); or the word example",
    ),
    InputSlot("train", "training data (.spacy); looked up in the folder or zip if left out", False),
    InputSlot("dev", "evaluation data (.spacy); looked up in the folder or zip if left out", False),
)
INFER_INPUTS = (
    InputSlot("model", "a finished spaCy training job's id, or a trained pipeline folder or zip"),
    InputSlot("texts", '.txt (one text per line), .jsonl (with a "text" field) or .spacy'),
)
TRAIN_PARAMS: dict[str, Param] = {
    "gpu": GPU_PARAM,
    "max_steps": Param(int, None, "training steps (default: the config's; 0: no limit)", minimum=0),
    "eval_frequency": Param(int, None, "evaluate every this many steps", minimum=1),
    "package": Param(bool, False, "also build an installable wheel of model-best"),
    "workflow": Param(str, None, "spaCy projects: the workflow or command to run"),
    "example": Param(bool, False, "train on generated example data (/train spacy example)"),
}
INFER_PARAMS: dict[str, Param] = {
    "gpu": GPU_PARAM,
    "batch_size": Param(int, 64, "texts per batch", minimum=1),
    "text_key": Param(str, "text", "the .jsonl field that holds the text"),
}

HELP_NOTES = """\
Config overrides: any dotted key, e.g. training.dropout=0.2 or \
components.ner.model.hidden_width=64. Keys are checked against the config before training \
starts. In a spaCy project, vars.NAME=value sets a project variable.
Without train= and dev=, a folder or zip is searched for train.spacy and dev.spacy (also \
training.spacy, valid.spacy, corpus/...). A folder or zip with a project.yml runs as a spaCy \
project: its assets must already be inside (nothing is downloaded); the default workflow is \
"all", else the first one.
Progress comes at each evaluation: step, epoch, losses, scores and the best score so far.
Results: model-best (use it with /infer spacy <job id> <texts>), model-last, the training log, \
and a wheel with package=yes.
/resume trains again from model-last's weights. spaCy cannot resume the optimizer state, so \
the optimizer and the step counter start again.
Inference writes predictions.jsonl: per input its id, text, entities and cats. The id is the \
"id" field of a .jsonl line, else the line number (.txt, .jsonl) or the position from 0 (.spacy).
The GPU needs CuPy: pip install "spacy[cuda12x]"."""


# ------------------------------------------------------------------------------ the plan


@dataclass
class TrainPlan:
    """What the prepare step decided; the kind's later steps and the collection follow it."""

    mode: str = "config"
    notes: list[str] = field(default_factory=list)
    device: str = "CPU"
    gpu_id: int = -1
    block_torch: bool = True
    config: str = ""
    train: str = ""
    dev: str = ""
    overrides: list[list[str]] = field(default_factory=list)
    output: str = ""
    cwd: str = ""
    example_texts: str = ""
    resumed_from: str = ""
    project_dir: str = ""
    workflow: str = ""
    commands: list[str] = field(default_factory=list)
    project_outputs: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainPlan:
        """The inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def read_plan(ctx: JobContext) -> TrainPlan:
    """The plan the prepare step wrote for this run."""
    data = json.loads((ctx.scratch_dir / PLAN_FILE).read_text(encoding="utf-8"))
    return TrainPlan.from_dict(data)


# ------------------------------------------------------------------------ pure parsing

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TABLE_HEADER = re.compile(r"^E {2,}# {2,}.*SCORE\s*$")
TABLE_NUMBER = r"(?:-?\d+(?:\.\d+)?(?:e[+-]?\d+)?|-?nan|-?inf)"
TABLE_ROW = re.compile(rf"^\s*(\d+)\s+(\d+)((?:\s+{TABLE_NUMBER})+)\s*$")


def strip_ansi(line: str) -> str:
    """A console line without colour codes."""
    return ANSI.sub("", line)


def parse_machine_line(line: str) -> dict[str, Any] | None:
    """``COLABOT_SPACY {"event": ...}`` -> the event; anything else -> None."""
    if not line.startswith(MACHINE_PREFIX):
        return None
    try:
        data = json.loads(line[len(MACHINE_PREFIX) :])
    except ValueError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("event"), str) else None


def parse_table_header(line: str) -> list[str] | None:
    """The column names of spaCy's training table header, or None for other lines."""
    text = strip_ansi(line).strip()
    if not TABLE_HEADER.match(text):
        return None
    return re.split(r" {2,}", text)


def parse_table_row(line: str, columns: list[str]) -> dict[str, float] | None:
    """One row of spaCy's training table -> epoch, step, losses, scores (0-1) and score.

    Losses become ``loss_<pipe>``; score columns other than SCORE and SPEED are shown x100 by
    spaCy and are scaled back to 0-1.
    """
    text = strip_ansi(line)
    if not TABLE_ROW.match(text):
        return None
    values = text.split()
    if len(values) != len(columns):
        return None
    row: dict[str, float] = {"epoch": float(values[0]), "step": float(values[1])}
    for name, raw in zip(columns[2:], values[2:], strict=True):
        value = float(raw)
        key = name.lower().rstrip(".").replace(" ", "_")
        if key == "score":
            row["score"] = value
        elif key.startswith("loss_") or key == "speed":
            row[key] = value
        else:
            row[key] = value / 100
    return row


def best_checkpoint(checkpoints: list[tuple[float, int]]) -> tuple[float, int] | None:
    """(best score, its step) as spaCy picks model-best: the latest step with the top score."""
    if not checkpoints:
        return None
    top = max(score for score, _ in checkpoints)
    return top, max(step for score, step in checkpoints if score == top)


def main_score_keys(performance: Mapping[str, Any], weights: Mapping[str, Any]) -> list[str]:
    """The scores worth showing: the config's score weights, else well-known ones."""
    numeric = [k for k, v in performance.items() if _is_number(v)]
    chosen = [k for k, w in weights.items() if w is not None and k in numeric]
    if not chosen:
        chosen = [k for k in DEFAULT_SCORE_KEYS if k in numeric]
    if not chosen:
        plain = [k for k in numeric if not k.endswith("_loss") and not k.startswith("token_")]
        chosen = [k for k in plain if k != "speed"][:4]
    return chosen


def format_scores(performance: Mapping[str, Any], keys: list[str]) -> str:
    """``ents_f 0.95 · ents_p 0.96``."""
    return " · ".join(f"{k} {float(performance[k]):.3f}" for k in keys)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class TrainingProgress:
    """Turns the training logger's events, or else spaCy's console table, into Progress."""

    def __init__(self, note: str = "") -> None:
        self.note = note
        self._steps = StepCounter("step")
        self._epochs = StepCounter("epoch")
        self._max_steps = 0
        self._max_epochs = 0
        self._weights: dict[str, Any] = {}
        self._columns: list[str] | None = None
        self._logger_seen = False
        self._checkpoints: list[tuple[float, int]] = []

    def parse(self, source: str, line: str) -> Progress | None:
        """A step parser: (source, line) -> Progress or None."""
        event = parse_machine_line(line)
        if event is not None:
            self._logger_seen = True
            return self._on_event(event)
        if self._logger_seen:
            return None
        header = parse_table_header(line)
        if header is not None:
            self._columns = header
            self._checkpoints = []
            return None
        if self._columns is None:
            return None
        row = parse_table_row(line, self._columns)
        return self._on_row(row) if row is not None else None

    def _on_event(self, event: dict[str, Any]) -> Progress | None:
        if event["event"] == "setup":
            self._max_steps = int(event.get("max_steps") or 0)
            self._max_epochs = int(event.get("max_epochs") or 0)
            self._weights = dict(event.get("score_weights") or {})
            self._checkpoints = []
            total = f" of {self._max_steps}" if self._max_steps else ""
            return Progress(message=self._with_note(f"training: step 0{total}"))
        if event["event"] != "eval":
            return None
        scores = {k: float(v) for k, v in dict(event.get("scores") or {}).items() if _is_number(v)}
        keys = [k for k, w in self._weights.items() if w is not None and k in scores]
        losses = {k: float(v) for k, v in dict(event.get("losses") or {}).items() if _is_number(v)}
        best = event.get("best_score"), event.get("best_step")
        return self._progress(
            int(event["step"]),
            int(event.get("epoch") or 0),
            float(event.get("score") or 0.0),
            {k: scores[k] for k in keys},
            losses,
            (float(best[0]), int(best[1])) if best[0] is not None and best[1] is not None else None,
        )

    def _on_row(self, row: dict[str, float]) -> Progress:
        step = int(row["step"])
        score = row.get("score", 0.0)
        self._checkpoints.append((score, step))
        losses = {k[5:]: v for k, v in row.items() if k.startswith("loss_")}
        scores = {
            k: v
            for k, v in row.items()
            if k not in ("epoch", "step", "score", "speed") and not k.startswith("loss_")
        }
        return self._progress(
            step, int(row["epoch"]), score, scores, losses, best_checkpoint(self._checkpoints)
        )

    def _progress(
        self,
        step: int,
        epoch: int,
        score: float,
        scores: dict[str, float],
        losses: dict[str, float],
        best: tuple[float, int] | None,
    ) -> Progress:
        metrics = {"score": score, **scores}
        metrics.update({f"loss_{name}": value for name, value in losses.items()})
        parts = [f"score {score:.3f}"]
        if best is not None:
            metrics["best_score"] = best[0]
            parts.append(f"best {best[0]:.3f} at step {best[1]}")
        if self._max_steps or not self._max_epochs:
            parts.insert(0, f"epoch {epoch}")
            total = self._max_steps or None
            return self._steps.update(step, total, metrics=metrics, note=self._with_note(parts))
        parts.insert(0, f"step {step}")
        return self._epochs.update(
            epoch, self._max_epochs, metrics=metrics, note=self._with_note(parts)
        )

    def _with_note(self, parts: list[str] | str) -> str:
        text = parts if isinstance(parts, str) else " · ".join(parts)
        return f"{text} · {self.note}" if self.note else text


class ProjectProgress:
    """Progress of one project command: which command runs, and training rows if it trains."""

    def __init__(self, command: str, index: int, count: int) -> None:
        self.label = f"command {command} ({index} of {count})"
        self._training = TrainingProgress(note=self.label)

    def parse(self, source: str, line: str) -> Progress | None:
        """A step parser: (source, line) -> Progress or None."""
        text = strip_ansi(line).strip()
        if text.startswith("Running command:"):
            program, _, rest = text.split(":", 1)[1].strip().partition(" ")
            script = f"{PurePosixPath(program).name} {rest}".strip()
            shown = script if len(script) <= 80 else script[:79] + "…"
            return Progress(message=f"{self.label}: {shown}")
        if text.startswith("Skipping"):
            return Progress(message=f"{self.label}: skipped, nothing changed")
        return self._training.parse(source, line)


class InferenceProgress:
    """Docs done of total from the inference program; posts its device notice once."""

    def __init__(self, ctx: JobContext, *, announce: bool = True) -> None:
        self._ctx = ctx
        self._announce = announce
        self._counter = StepCounter("docs")

    def parse(self, source: str, line: str) -> Progress | None:
        """A step parser: (source, line) -> Progress or None."""
        event = parse_machine_line(line)
        if event is None:
            return None
        if event["event"] == "device":
            if self._announce:
                self._ctx.notify(str(event.get("note", "")))
            return Progress(message=str(event.get("note", "")))
        if event["event"] == "docs":
            return self._counter.update(float(event["done"]), float(event.get("total") or 0))
        if event["event"] == "stage":
            return Progress(message=str(event.get("text", "")))
        return None


def stage_parser(source: str, line: str) -> Progress | None:
    """The prepare step's stage lines -> Progress."""
    event = parse_machine_line(line)
    if event is not None and event["event"] == "stage":
        return Progress(message=str(event.get("text", "")))
    return None


# --------------------------------------------------------------------- failure reasons

FAILURES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"No module named '(spacy|weasel|confection|thinc|srsly)[.']"),
        'spaCy is not installed where jobs run ({0} is missing): pip install "colabot[spacy]"',
    ),
    (
        re.compile(r"Cannot use GPU, CuPy is not installed"),
        'a GPU was asked for, but CuPy is not installed: pip install "spacy[cuda12x]", '
        "or train with gpu=cpu",
    ),
    (
        re.compile(r"No GPU devices detected|CUDARuntimeError|cudaErrorNoDevice"),
        "a GPU was asked for, but none is visible (no driver or no device); use gpu=cpu",
    ),
    (
        re.compile(r"OutOfMemoryError|CUDA out of memory|out of memory", re.IGNORECASE),
        "the GPU ran out of memory: use smaller batches (e.g. training.batcher.size.stop=500 or "
        "nlp.batch_size=64), a smaller model, or gpu=cpu",
    ),
    (
        re.compile(r"\[E1014\]"),
        "a .spacy file is not in spaCy's DocBin format; convert the data with "
        "python -m spacy convert",
    ),
    (
        re.compile(r"\[E923\]"),
        "there are no usable training examples: the training data is empty or lacks the "
        "annotations the pipeline's components learn from",
    ),
    (
        re.compile(r"\[E884\].*?vectors could not be found at '([^']*)'"),
        "the config needs the word vectors {0}, which are not installed here; install them or "
        "train without (paths.vectors=null, or a config made with --optimize efficiency)",
    ),
    (
        re.compile(r"\[E893\] Could not find function '([^']+)' in function registry '(\w+)'"),
        "the config uses {0} (a registered {1} function) that is not installed; a plugin package "
        "such as spacy-transformers may be missing",
    ),
    (
        re.compile(r"not a valid section reference: (\S+)"),
        "the config refers to the section [{0}], which it does not have",
    ),
    (re.compile(r"(Bad value substitution: .*)"), "the config does not parse: {0}"),
    (
        re.compile(r"Missing dependency specified by command '([^']+)': (.+)"),
        "project command {0} needs {1}, which does not exist (an asset, or the output of a "
        "command that has not run)",
    ),
    (
        re.compile(r"Can't find command or workflow '([^']+)'"),
        "project.yml has no command or workflow {0}",
    ),
    (
        re.compile(r"No such file or directory: '([^']+)'"),
        "a file is missing: {0}",
    ),
    (
        re.compile(r"Invalid value for '([\w-]+)': (.+)"),
        "invalid {0}: {1}",
    ),
    (re.compile(r"(Path to Python code not found)"), "{0}"),
)
CONFIG_ERROR_TITLES = ("Config validation error", "Error parsing config overrides")
EXCEPTION_LINE = re.compile(r"^([\w.]+(?:Error|Exception)): (.+)$")


def explain_spacy_failure(tail: list[str]) -> str | None:
    """The cause of a failed spaCy step in plain words, from its last lines; None if unknown."""
    lines = [strip_ansi(line).rstrip() for line in tail]
    for line in reversed(lines):
        if line.startswith(ERROR_PREFIX):
            return line[len(ERROR_PREFIX) :]
    config = _config_error(lines)
    if config is not None:
        return config
    for pattern, template in FAILURES:
        for line in reversed(lines):
            match = pattern.search(line)
            if match:
                return template.format(*(_shorten(g) for g in match.groups()))
    for line in reversed(lines):
        match = EXCEPTION_LINE.match(line.strip())
        if match:
            return f"{match.group(1).rsplit('.', 1)[-1]}: {_shorten(match.group(2), 300)}"
    return None


def _config_error(lines: list[str]) -> str | None:
    """The first detail under spaCy's "Config validation error" block, in words."""
    for index in range(len(lines) - 1, -1, -1):
        title = lines[index].lstrip("✘ ").strip()
        if title not in CONFIG_ERROR_TITLES:
            continue
        details = []
        for line in lines[index + 1 :]:
            text = line.strip()
            if not text or text.startswith(("Make sure", "{", "file:", "'")):
                continue
            if "\t" in text:
                where, what = text.split("\t", 1)
                text = f"{where.strip()}: {what.strip()}"
            details.append(text)
            if len(details) == 2:
                break
        if title == CONFIG_ERROR_TITLES[1]:
            prefix = "a config override names a section the config does not have"
        elif any("valid section reference" in d for d in details):
            prefix = "the config refers to a section it does not have"
        else:
            prefix = "the config is not valid"
        return prefix + (": " + "; ".join(_shorten(d) for d in details) if details else "")
    return None


def _shorten(text: str, limit: int = 200) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------- outcome summaries


def read_training_log(path: Path) -> list[dict[str, Any]]:
    """The events of the latest run in a training log (JSON lines; later runs append)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    events: list[dict[str, Any]] = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        if event.get("event") == "setup":
            events = []
        events.append(event)
    return events


def read_performance(model_dir: Path) -> dict[str, Any]:
    """The ``performance`` block of a trained pipeline's meta.json ({} when unreadable)."""
    try:
        meta = json.loads((model_dir / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    performance = meta.get("performance") if isinstance(meta, dict) else None
    return dict(performance) if isinstance(performance, dict) else {}


def training_summary(
    events: list[dict[str, Any]], performance: Mapping[str, Any], device: str
) -> tuple[str, dict[str, float]]:
    """The chat summary and metrics of a finished training run."""
    setup = next((e for e in events if e.get("event") == "setup"), {})
    evals = [e for e in events if e.get("event") == "eval"]
    pipeline = ", ".join(str(p) for p in setup.get("pipeline", [])) or "pipeline"
    head = f"spaCy pipeline ({pipeline}) trained on {device}"
    metrics: dict[str, float] = {k: float(v) for k, v in performance.items() if _is_number(v)}
    if evals:
        last = evals[-1]
        head += f" for {last['step']} steps ({last.get('epoch', 0)} epochs)"
        metrics["steps"] = float(last["step"])
    lines = [head + "."]
    keys = main_score_keys(performance, dict(setup.get("score_weights") or {}))
    if keys:
        best = ""
        if evals and evals[-1].get("best_step") is not None:
            best = f" (best at step {evals[-1]['best_step']})"
            metrics["best_step"] = float(evals[-1]["best_step"])
        lines.append(f"model-best: {format_scores(performance, keys)}{best}")
    return "\n".join(lines), metrics


def inference_summary(stats: Mapping[str, Any], output_name: str = PREDICTIONS) -> str:
    """Counts and a short sample of an inference run, for the chat."""
    docs, errors = int(stats.get("docs", 0)), int(stats.get("errors", 0))
    head = f"spaCy inference: {docs} docs → {output_name}"
    lines = [head]
    if errors:
        lines.append(f"{errors} inputs could not be read, e.g. {stats.get('first_error', '')}")
    labels = dict(stats.get("entities") or {})
    if labels:
        total = sum(int(n) for n in labels.values())
        counts = ", ".join(f"{label} {n}" for label, n in _top(labels, 8))
        lines.append(f"entities: {total} ({counts})")
    cats = dict(stats.get("top_categories") or {})
    if cats:
        label, count = _top(cats, 1)[0]
        lines.append(f"most frequent category: {label} ({count} of {docs} docs)")
    sample = list(stats.get("sample") or [])[:3]
    if sample:
        lines.append("sample:")
        lines.extend(sample_line(row) for row in sample)
    return "\n".join(lines)


def sample_line(row: Mapping[str, Any]) -> str:
    """One prediction as a short readable line."""
    if "error" in row:
        return f"{row.get('id')}: {_shorten(str(row['error']), 100)}"
    text = _shorten(str(row.get("text", "")), 60)
    ents = ", ".join(f"{e['label']} {e['text']!r}" for e in list(row.get("entities") or [])[:4])
    cats = dict(row.get("cats") or {})
    parts = [ents or "no entities"]
    if cats:
        label, score = max(cats.items(), key=lambda kv: float(kv[1]))
        parts.append(f"{label} {float(score):.2f}")
    return f"{row.get('id')}: {text} → {'; '.join(parts)}"


def _top(counts: Mapping[str, Any], limit: int) -> list[tuple[str, int]]:
    ordered = sorted(((str(k), int(v)) for k, v in counts.items()), key=lambda kv: (-kv[1], kv[0]))
    return ordered[:limit]


# ------------------------------------------------------------------------- validation


def is_override_key(name: str) -> bool:
    """Whether a parameter name is a dotted config (or project variable) override."""
    return OVERRIDE_KEY.fullmatch(name) is not None


def check_gpu_value(value: ParamValue | None) -> None:
    """Refuse a gpu= value that is not auto, cpu or a GPU number."""
    text = str(value).strip().lower()
    if text not in ("auto", "cpu") and not text.isdigit():
        raise SpecError("params.gpu", f"must be auto, cpu or a GPU number, got {value!r}")


def _local_name(source: str) -> str | None:
    """The file name of a path or upload source; None for URLs, Drive links and job ids."""
    text = source.strip()
    if text.startswith("upload:"):
        return text[len("upload:") :]
    if re.match(r"^(?:[a-z][a-z0-9+.-]+:|#\d|job:)", text, flags=re.IGNORECASE):
        return None
    return PurePosixPath(text).name


def _validate_train(spec: JobSpec) -> JobSpec:
    inputs = dict(spec.inputs)
    params = dict(spec.params)
    if inputs.get("config", "").strip().lower() == "example":
        del inputs["config"]
        params.setdefault("example", True)
    example = "example" in params and coerce_param(
        "example", TRAIN_PARAMS["example"], params["example"]
    )
    slots = TRAIN_INPUTS
    if example:
        slots = (InputSlot("config", TRAIN_INPUTS[0].help, False), *TRAIN_INPUTS[1:])
    clean = validate_common(
        JobSpec(spec.kind, spec.action, inputs, params),
        slots,
        TRAIN_PARAMS,
        extra_param=is_override_key,
    )
    if clean.params.get("example") and set(clean.inputs) & {"config", "train", "dev"}:
        raise SpecError("inputs", "the example brings its own config and data; give no inputs")
    check_gpu_value(clean.params.get("gpu"))
    for key, value in clean.params.items():
        if not is_override_key(key):
            continue
        if key in RESERVED_OVERRIDES:
            raise SpecError(f"params.{key}", RESERVED_OVERRIDES[key])
        if key in SAME_AS_PARAM and SAME_AS_PARAM[key] in clean.params:
            raise SpecError(f"params.{key}", f"give either {key} or {SAME_AS_PARAM[key]}")
        if str(value).startswith("--"):
            raise SpecError(f"params.{key}", "a value may not start with --")
    name = _local_name(clean.inputs.get("config", ""))
    if name is not None and name.lower().endswith(".cfg"):
        for slot in ("train", "dev"):
            if slot not in clean.inputs:
                raise SpecError(
                    f"inputs.{slot}",
                    f"missing: with a single .cfg config, give {slot}=<.spacy file> "
                    "(or send a folder or zip that holds the config and the data)",
                )
    return clean


def _validate_infer(spec: JobSpec) -> JobSpec:
    clean = validate_common(spec, INFER_INPUTS, INFER_PARAMS)
    check_gpu_value(clean.params.get("gpu"))
    name = _local_name(clean.inputs.get("texts", ""))
    suffix = PurePosixPath(name).suffix.lower() if name else ""
    if suffix and suffix not in TEXT_SUFFIXES and suffix != ".zip":
        raise SpecError("inputs.texts", f"must be a .txt, .jsonl or .spacy file, got {name}")
    return clean


# ------------------------------------------------------------------------------ the kind


class SpacyKind:
    """spaCy training (config, folder, zip, project or the built-in example) and inference."""

    name = "spacy"
    summary = "spaCy pipelines: train from a config or a spaCy project; tag texts with a model"
    actions = frozenset({Action.TRAIN, Action.INFER})
    help_notes = HELP_NOTES

    def inputs(self, action: Action) -> tuple[InputSlot, ...]:
        """Training reads a config and data; inference a model and texts."""
        return TRAIN_INPUTS if action is Action.TRAIN else INFER_INPUTS

    def params(self, action: Action) -> Mapping[str, Param]:
        """Device and training or batching settings."""
        return TRAIN_PARAMS if action is Action.TRAIN else INFER_PARAMS

    def validate(self, spec: JobSpec) -> JobSpec:
        """Check inputs and parameters; ``example`` as the config becomes example=yes."""
        if spec.action is Action.TRAIN:
            return _validate_train(spec)
        return _validate_infer(spec)

    # steps ------------------------------------------------------------------------------

    def steps(self, ctx: JobContext) -> Iterator[Step]:
        """Prepare, then train (or run the project's commands), package and try the model."""
        if ctx.spec.action is Action.INFER:
            model, texts = ctx.input("model"), ctx.input("texts")
            yield self._inference_step(ctx, model, texts, str(ctx.param("gpu")))
            return
        yield Step("prepare", self._prepare_argv(ctx), env=dict(STEP_ENV), parser=stage_parser)
        plan = read_plan(ctx)
        for note in plan.notes:
            ctx.notify(note)
        if plan.mode == "project":
            yield from self._project_steps(ctx, plan)
            return
        yield Step(
            "train",
            train_argv(ctx.python, plan, ctx.outputs_dir / TRAINING_LOG),
            env=dict(STEP_ENV),
            cwd=Path(plan.cwd) if plan.cwd else None,
            parser=TrainingProgress().parse,
        )
        if ctx.param("package"):
            yield Step("package", package_argv(ctx, plan), env=dict(STEP_ENV))
        if plan.example_texts:
            model = Path(plan.output) / BEST
            texts = Path(plan.example_texts)
            gpu = str(plan.gpu_id) if plan.gpu_id >= 0 else "cpu"
            yield self._inference_step(ctx, model, texts, gpu, announce=False)

    def _prepare_argv(self, ctx: JobContext) -> list[str]:
        argv = [
            ctx.python,
            "-m",
            TOOLS_MODULE,
            "prepare",
            "--plan",
            str(ctx.scratch_dir / PLAN_FILE),
            "--work",
            str(ctx.scratch_dir),
            "--output",
            str(ctx.outputs_dir / TRAINING_DIR),
            "--gpu",
            str(ctx.param("gpu")),
        ]
        if ctx.param("example"):
            argv.append("--example")
        if ctx.param("package"):
            argv += ["--package-dir", str(ctx.outputs_dir / PACKAGE_DIR)]
        for slot in ("config", "train", "dev"):
            if slot in ctx.inputs:
                argv += [f"--{slot}", str(ctx.input(slot))]
        for name in ("max_steps", "eval_frequency", "workflow"):
            value = ctx.param(name)
            if value is not None:
                argv += [f"--{name.replace('_', '-')}", str(value)]
        for key, value in ctx.spec.params.items():
            if is_override_key(key):
                argv += ["--override", f"{key}={value}"]
        if ctx.resume_from is not None:
            argv += ["--resume-from", str(ctx.resume_from)]
        return argv

    def _project_steps(self, ctx: JobContext, plan: TrainPlan) -> Iterator[Step]:
        count = len(plan.commands)
        for index, command in enumerate(plan.commands, 1):
            yield Step(
                f"project command {command} ({index} of {count})",
                [ctx.python, "-m", "weasel", "run", command, plan.project_dir],
                env={**STEP_ENV, **plan.env},
                cwd=Path(plan.project_dir),
                parser=ProjectProgress(command, index, count).parse,
            )

    def _inference_step(
        self, ctx: JobContext, model: Path, texts: Path, gpu: str, *, announce: bool = True
    ) -> Step:
        """Run the model over the texts; the device is announced unless training did."""
        argv = [
            ctx.python,
            "-m",
            TOOLS_MODULE,
            "infer",
            "--model",
            str(model),
            "--texts",
            str(texts),
            "--out",
            str(ctx.outputs_dir / PREDICTIONS),
            "--stats",
            str(ctx.scratch_dir / INFERENCE_STATS),
            "--work",
            str(ctx.scratch_dir),
            "--gpu",
            gpu,
            "--batch-size",
            str(ctx.param("batch_size") or INFER_PARAMS["batch_size"].default),
            "--text-key",
            str(ctx.param("text_key") or INFER_PARAMS["text_key"].default),
        ]
        parser = InferenceProgress(ctx, announce=announce).parse
        return Step("inference", argv, env=dict(STEP_ENV), parser=parser)

    # results ----------------------------------------------------------------------------

    def explain_failure(self, ctx: JobContext, step: Step, tail: list[str]) -> str | None:
        """Name the cause of the common spaCy, weasel and colabot-check failures."""
        return explain_spacy_failure(tail)

    def collect(self, ctx: JobContext) -> Outcome:
        """Models, training log, wheel and predictions, with a summary of the scores."""
        if ctx.spec.action is Action.INFER:
            return self._collect_inference(ctx)
        plan = read_plan(ctx)
        if plan.mode == "project":
            return self._collect_project(ctx, plan)
        return self._collect_training(ctx, plan)

    def _collect_inference(self, ctx: JobContext) -> Outcome:
        stats = _read_json(ctx.scratch_dir / INFERENCE_STATS)
        metrics = {"docs": float(stats.get("docs", 0)), "errors": float(stats.get("errors", 0))}
        outputs = [Output(ctx.outputs_dir / PREDICTIONS, "predictions", PREDICTIONS)]
        return Outcome(outputs=outputs, summary=inference_summary(stats), metrics=metrics)

    def _collect_training(self, ctx: JobContext, plan: TrainPlan) -> Outcome:
        training = Path(plan.output)
        events = read_training_log(ctx.outputs_dir / TRAINING_LOG)
        summary, metrics = training_summary(events, read_performance(training / BEST), plan.device)
        if plan.resumed_from:
            summary += "\n(continued from the weights of the earlier attempt's model-last)"
        outputs = [
            Output(training / BEST, "model", BEST),
            Output(training / LAST, "checkpoint", LAST),
            Output(ctx.outputs_dir / TRAINING_LOG, "metrics", "training log"),
        ]
        wheels = sorted((ctx.outputs_dir / PACKAGE_DIR).glob("*/dist/*.whl"))
        if wheels:
            outputs.append(Output(wheels[-1], "package", wheels[-1].name))
            summary += f"\nwheel: {wheels[-1].name} (pip install it, then spacy.load it)"
        if plan.example_texts:
            outputs.append(Output(ctx.outputs_dir / PREDICTIONS, "predictions", PREDICTIONS))
            summary += "\n" + inference_summary(_read_json(ctx.scratch_dir / INFERENCE_STATS))
            summary += f"\nNext: /infer spacy {ctx.job.id} <your texts>"
        return Outcome(outputs=outputs, summary=summary, metrics=metrics)

    def _collect_project(self, ctx: JobContext, plan: TrainPlan) -> Outcome:
        root = Path(plan.project_dir)
        models = project_models(root, plan.project_outputs)
        outputs: list[Output] = []
        names: set[str] = set()
        seen: set[Path] = set()
        for role, label in (("model", BEST), ("checkpoint", LAST)):
            if label in models:
                outputs.append(Output(models[label], role, label))
                names.add(models[label].name)
                seen.add(models[label])
        for relative in plan.project_outputs:
            path = root / relative
            if path.exists() and path not in seen and path.name not in names:
                outputs.append(Output(path, "output", relative))
                names.add(path.name)
                seen.add(path)
        lines = [f"spaCy project: ran {plan.workflow} ({', '.join(plan.commands)})."]
        metrics: dict[str, float] = {}
        if BEST in models:
            performance = read_performance(models[BEST])
            metrics = {k: float(v) for k, v in performance.items() if _is_number(v)}
            keys = main_score_keys(performance, {})
            shown = models[BEST].relative_to(root)
            lines.append(f"{shown}: {format_scores(performance, keys) or 'no scores'}")
        kept = [o.label for o in outputs if o.role == "output"]
        if kept:
            lines.append("outputs: " + ", ".join(kept))
        return Outcome(outputs=outputs, summary="\n".join(lines), metrics=metrics)

    def checkpoint(self, ctx: JobContext) -> Path | None:
        """model-last of this job's training, when one was saved."""
        if ctx.spec.action is not Action.TRAIN:
            return None
        last = ctx.outputs_dir / TRAINING_DIR / LAST
        if (last / "meta.json").exists():
            return last
        try:
            plan = read_plan(ctx)
        except (OSError, ValueError):
            return None
        if plan.mode == "project":
            return project_models(Path(plan.project_dir), plan.project_outputs).get(LAST)
        return None


def train_argv(python: str, plan: TrainPlan, log_path: Path) -> list[str]:
    """The ``spacy train`` command line of a plan, with colabot's progress logger."""
    logger = json.dumps({"@loggers": LOGGER_NAME, "log_path": str(log_path)})
    argv = [python, "-m", CLI_MODULE]
    if plan.block_torch:
        argv.append("--no-torch")
    argv += [
        "train",
        plan.config,
        "--output",
        plan.output,
        "--paths.train",
        plan.train,
        "--paths.dev",
        plan.dev,
        "--gpu-id",
        str(plan.gpu_id),
        "--code",
        str(LOGGER_FILE),
        "--training.logger",
        logger,
    ]
    for key, value in plan.overrides:
        argv += [f"--{key}", value]
    return argv


def package_argv(ctx: JobContext, plan: TrainPlan) -> list[str]:
    """``spacy package`` for model-best, building a wheel."""
    return [
        ctx.python,
        "-m",
        CLI_MODULE,
        "--no-torch",
        "package",
        str(Path(plan.output) / BEST),
        str(ctx.outputs_dir / PACKAGE_DIR),
        "--name",
        f"colabot_job{ctx.job.id}",
        "--build",
        "wheel",
        "--force",
    ]


def project_models(root: Path, declared: list[str]) -> dict[str, Path]:
    """model-best and model-last among a project's declared outputs (or its training folder).

    Looks only at the declared outputs, their parents and ``training/``, so it stays cheap.
    """
    candidates: list[Path] = [root / "training"]
    for relative in declared:
        path = root / relative
        candidates += [path, path.parent]
    found: dict[str, Path] = {}
    for folder in candidates:
        for name in (BEST, LAST):
            for path in (folder, folder / name):
                if path.name == name and (path / "meta.json").is_file() and name not in found:
                    found[name] = path
    return found


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
