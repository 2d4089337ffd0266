"""What the chat is told about a spaCy job that ran: the scores of a training, the counts of
an inference, read from the files the job left.
"""

from __future__ import annotations

import configparser
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.kinds.base import shorten
from workers.kinds.spacy.plan import PREDICTIONS
from workers.kinds.spacy.progress import is_number
from workers.quality import ModelScores, Score

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
    review = stats.get("review")
    if isinstance(review, Mapping):
        lines.extend(review_lines(review))
    return "\n".join(lines)


REVIEW_BASIS = {
    "textcat": "the margin between the two likeliest categories (multi-label: the distance "
    "from 0.5)",
    "ner": "the NER's beam-search probability of its entities (approximate: a greedy-trained "
    "NER is often overconfident)",
}


def review_lines(review: Mapping[str, Any]) -> list[str]:
    """``review these (...):`` and a line per text the model is least sure of; or the one
    line saying why there is no such list."""
    items = [item for item in review.get("items") or [] if isinstance(item, Mapping)]
    basis = REVIEW_BASIS.get(str(review.get("method")))
    if basis is None or not items:
        note = str(review.get("note") or "")
        return [f"review: {note}"] if note else []
    lines = [f"review these ({len(items)} least confident, by {basis}):"]
    for item in items:
        confidence = _value(item.get("confidence"))
        number = "—" if confidence is None else f"{confidence:.3f}"
        text = shorten(str(item.get("text", "")), 60)
        lines.append(f"{item.get('id')}: {number} · {text} → {item.get('detail', '')}")
    return lines


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


# ------------------------------------------------------------------ held-out scores (meta.json)

SPLIT = "dev"
LABELS_SHOWN = 6
"""Per-label scores shown per component, weakest first; the rest are counted."""


@dataclass(frozen=True)
class ScoreKeys:
    """Where one kind of component's scores lie in ``performance``: the headline first."""

    scores: tuple[tuple[str, str], ...]
    """(shown name, performance key) pairs."""
    per_type: str = ""
    """The key of the per-label P/R/F scores ('' when there are none)."""


ENTS = ScoreKeys((("F", "ents_f"), ("P", "ents_p"), ("R", "ents_r")), "ents_per_type")
SCORE_KEYS: dict[str, ScoreKeys] = {
    "ner": ENTS,
    "beam_ner": ENTS,
    "textcat": ScoreKeys(
        (("score", "cats_score"), ("macro P", "cats_macro_p"), ("macro R", "cats_macro_r")),
        "cats_f_per_type",
    ),
    "tagger": ScoreKeys((("tag accuracy", "tag_acc"),)),
    "morphologizer": ScoreKeys((("POS accuracy", "pos_acc"), ("morph accuracy", "morph_acc"))),
    "parser": ScoreKeys((("LAS", "dep_las"), ("UAS", "dep_uas")), "dep_las_per_type"),
    "senter": ScoreKeys((("F", "sents_f"), ("P", "sents_p"), ("R", "sents_r"))),
    "trainable_lemmatizer": ScoreKeys((("lemma accuracy", "lemma_acc"),)),
    "entity_linker": ScoreKeys((("F", "nel_micro_f"), ("P", "nel_micro_p"), ("R", "nel_micro_r"))),
}
SCORE_KEYS["textcat_multilabel"] = SCORE_KEYS["textcat"]
SCORE_KEYS["beam_parser"] = SCORE_KEYS["parser"]


@dataclass(frozen=True)
class LabelScore:
    """One label's P, R and F on the dev set (None: not computed)."""

    label: str
    p: float | None
    r: float | None
    f: float | None
    auc: float | None = None

    def shown(self) -> str:
        """``GPE P 0.40 R 0.43 F 0.41``."""
        parts = [f"{name} {_fraction(value)}" for name, value in self.scored()]
        return f"{self.label} " + " ".join(parts)

    def scored(self) -> list[tuple[str, float | None]]:
        """The label's numbers by name (AUC only where spaCy computed it)."""
        numbers = [("P", self.p), ("R", self.r), ("F", self.f)]
        return numbers + ([("AUC", self.auc)] if self.auc is not None else [])


@dataclass(frozen=True)
class ComponentScores:
    """A component's held-out scores (its :class:`ModelScores`) and its labels' scores,
    weakest first, with the labels the dev data does not hold."""

    scores: ModelScores
    labels: tuple[LabelScore, ...] = ()
    unseen: tuple[str, ...] = ()

    def label_line(self, limit: int = LABELS_SHOWN) -> str:
        """``ner per label: GPE P 0.40 R 0.43 F 0.41 · PERSON ...``; '' without labels."""
        if not self.labels and not self.unseen:
            return ""
        shown = " · ".join(label.shown() for label in self.labels[:limit])
        rest = len(self.labels) - limit
        if rest > 0:
            shown += f" · and {rest} more (in meta.json)"
        text = f"{self.scores.model} per label: {shown or 'none scored'}"
        if self.unseen:
            text += " · not in the dev data: " + ", ".join(self.unseen[:limit])
            if len(self.unseen) > limit:
                text += f" and {len(self.unseen) - limit} more"
        return text


@dataclass(frozen=True)
class PipelineScores:
    """What a trained pipeline's meta.json says about it on the dev data."""

    components: tuple[ComponentScores, ...] = ()

    @property
    def models(self) -> tuple[ModelScores, ...]:
        """The components' scores, as :class:`workers.quality.Quality` keeps them."""
        return tuple(c.scores for c in self.components)

    def lines(self) -> list[str]:
        """For the summary: each component's scores, then its labels' scores."""
        lines = []
        for component in self.components:
            lines.append(component.scores.line())
            if label_line := component.label_line():
                lines.append(label_line)
        return lines


def read_scores(model_dir: Path) -> PipelineScores:
    """The held-out scores in a trained pipeline's meta.json, per component; when meta.json
    is missing or unreadable, one entry saying so."""
    meta_path = model_dir / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return _no_scores(model_dir.name, f"no scores: {model_dir.name} has no meta.json")
    except (OSError, ValueError) as exc:
        why = "is not valid JSON" if isinstance(exc, ValueError) else "could not be read"
        return _no_scores(model_dir.name, f"no scores: its meta.json {why}")
    if not isinstance(meta, dict):
        return _no_scores(model_dir.name, "no scores: its meta.json is not a JSON object")
    return pipeline_scores(meta, read_factories(model_dir / "config.cfg"), model_dir.name)


def _no_scores(model: str, note: str) -> PipelineScores:
    return PipelineScores((ComponentScores(ModelScores(model, SPLIT, note=note)),))


def read_factories(config: Path) -> dict[str, str]:
    """Each component's factory in a trained pipeline's config.cfg ({} when unreadable).

    Read as plain INI (spaCy's config syntax is), so the bot process needs no spaCy."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, configparser.Error):
        return {}
    factories = {}
    for section in parser.sections():
        name = section.removeprefix("components.")
        if name == section or "." in name or not parser.has_option(section, "factory"):
            continue
        raw = parser.get(section, "factory").strip()
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        factories[name] = str(value)
    return factories


def pipeline_scores(
    meta: Mapping[str, Any], factories: Mapping[str, str], model: str = "pipeline"
) -> PipelineScores:
    """Per scored component of ``meta['pipeline']`` (its factory from ``factories``, else
    its name), the numbers of ``meta['performance']``: the headline (ents_f for ner,
    cats_score for textcat, ...), then P and R, with the labels' P/R/F and the weakest label.
    Components sharing a kind of score (two ner) share one entry, named ``ner+ner2``."""
    performance = meta.get("performance")
    if not isinstance(performance, Mapping):
        return _no_scores(model, "no scores: its meta.json holds no performance")
    pipeline = [str(p) for p in meta.get("pipeline") or [] if isinstance(p, str)]
    labels = meta.get("labels") if isinstance(meta.get("labels"), Mapping) else {}
    grouped: dict[ScoreKeys, list[str]] = {}
    for name in pipeline:
        keys = SCORE_KEYS.get(factories.get(name, name))
        if keys is not None and keys.scores[0][1] in performance:
            grouped.setdefault(keys, []).append(name)
    components = []
    for keys, names in grouped.items():
        known = [str(label) for n in names for label in (labels or {}).get(n) or []]
        components.append(_component("+".join(names), keys, performance, known))
    if not components:
        return _no_scores(model, "no scores: its meta.json holds none colabot knows")
    return PipelineScores(tuple(components))


def _component(
    name: str, keys: ScoreKeys, performance: Mapping[str, Any], known: list[str]
) -> ComponentScores:
    scores = []
    for shown, key in keys.scores:
        if shown == "score":
            shown = str(performance.get("cats_score_desc") or "score")
        scores.append(Score(shown, _value(performance.get(key))))
    if keys is SCORE_KEYS["textcat"]:
        # cats_score is macro F, macro AUC (multilabel) or one label's F: the others follow.
        for shown, key in (("macro F", "cats_macro_f"), ("macro AUC", "cats_macro_auc")):
            if scores[0].name != shown and key in performance:
                scores.append(Score(shown, _value(performance[key])))
    labels = label_scores(performance.get(keys.per_type) if keys.per_type else None)
    if keys is SCORE_KEYS["textcat"]:
        labels = _with_auc(labels, performance.get("cats_auc_per_type"))
    scored = {label.label for label in labels}
    unseen = tuple(label for label in known if label not in scored) if keys.per_type else ()
    model = ModelScores(name, SPLIT, tuple(scores), weakest=weakest_label(labels))
    return ComponentScores(model, labels, unseen)


def weakest_label(labels: tuple[LabelScore, ...]) -> str:
    """``GPE (F 0.41)``: the label with the lowest F, when the labels' F differ."""
    scored = [label for label in labels if label.f is not None]
    if len(scored) < 2:
        return ""
    weakest = min(scored, key=lambda s: (s.f, s.label))
    if weakest.f is None or weakest.f >= max(s.f or 0.0 for s in scored):
        return ""
    return f"{weakest.label} (F {weakest.f:.2f})"


def label_scores(per_type: object) -> tuple[LabelScore, ...]:
    """Labels' P/R/F from a ``*_per_type`` block, weakest first (lowest F, then by name;
    labels without an F last); () when there is no such block."""
    if not isinstance(per_type, Mapping):
        return ()
    labels = [
        LabelScore(str(label), _value(s.get("p")), _value(s.get("r")), _value(s.get("f")))
        for label, s in per_type.items()
        if isinstance(s, Mapping)
    ]
    return tuple(sorted(labels, key=lambda s: (s.f is None, s.f or 0.0, s.label)))


def _with_auc(labels: tuple[LabelScore, ...], auc: object) -> tuple[LabelScore, ...]:
    """Labels with their AUC, where the performance has ``cats_auc_per_type`` (meta.json
    does not by default: only ``spacy benchmark accuracy`` writes it)."""
    if not isinstance(auc, Mapping):
        return labels
    return tuple(dataclasses.replace(s, auc=_value(auc.get(s.label))) for s in labels)


def _value(value: object) -> float | None:
    if not is_number(value):
        return None
    number = float(value)  # type: ignore[arg-type]
    return number if number == number else None  # NaN is no score to show


def _fraction(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"
