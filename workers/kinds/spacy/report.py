"""What the chat is told about a spaCy job that ran: the scores of a training, the counts of
an inference, read from the files the job left.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workers.kinds.base import shorten
from workers.kinds.spacy.plan import PREDICTIONS
from workers.kinds.spacy.progress import is_number

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
    stopped = next((e for e in events if e.get("event") == "stopped_early"), None)
    if stopped is not None:
        head += f", stopped early at step {stopped.get('step')} (epoch {stopped.get('epoch')})"
        metrics["steps"] = float(stopped.get("step") or 0)
        metrics["stopped_early"] = 1.0
    elif evals:
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
        return f"{row.get('id')}: {shorten(str(row['error']), 100)}"
    text = shorten(str(row.get("text", "")), 60)
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
