"""What the chat is told about a spaCy job: why it failed, in plain words, and what a
training or inference run achieved.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workers.kinds.spacy_progress import is_number, strip_ansi
from workers.kinds.spacy_protocol import ERROR_PREFIX, PREDICTIONS

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

# --------------------------------------------------------------------- failure reasons

FAILURES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"Generating wheels requires 'build' or 'wheel'"),
        "package=yes builds a wheel, which needs the 'wheel' package: pip install wheel "
        '(it comes with "colabot[spacy]")',
    ),
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


def main_score_keys(performance: Mapping[str, Any], weights: Mapping[str, Any]) -> list[str]:
    """The scores worth showing: the config's score weights, else well-known ones."""
    numeric = [k for k, v in performance.items() if is_number(v)]
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
    metrics: dict[str, float] = {k: float(v) for k, v in performance.items() if is_number(v)}
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
