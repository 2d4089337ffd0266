"""How good a trained model is, in numbers a person can act on (pure: no I/O).

A training job's kind reports, per model, the scores its framework computed on held-out data
(SLEAP's validation and test splits, spaCy's dev set), and a fingerprint of the data it was
trained on. colabot keeps them with the job, and compares each new run with the newest
earlier run of the same kind on the same data: "mOKS 0.71 → 0.78 (+0.07) vs #12", and which
parameters differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers.jobs import ParamValue

NOT_EVALUATED = "not evaluated"


@dataclass(frozen=True)
class Score:
    """One number: its name as people read it, its value (None: not computed), and which
    way is better."""

    name: str
    value: float | None
    higher_is_better: bool = True
    unit: str = ""
    """``px`` for a distance; '' for a fraction."""

    def shown(self) -> str:
        """``mOKS 0.712``, ``distance p50 2.7 px``, ``F1 —`` (not computed)."""
        if self.value is None:
            return f"{self.name} —"
        number = f"{self.value:.3g}" if self.unit else f"{self.value:.3f}"
        return f"{self.name} {number}{' ' + self.unit if self.unit else ''}"


@dataclass(frozen=True)
class ModelScores:
    """A model's held-out scores on one split; the first score is its headline. A model
    the framework could not evaluate has no scores and a ``note`` saying why."""

    model: str
    split: str
    scores: tuple[Score, ...] = ()
    note: str = ""
    weakest: str = ""
    """The weakest label, where scores are per label (spaCy): ``GPE (F 0.41)``."""

    @property
    def headline(self) -> Score | None:
        """The score the model is judged by first (None when it was not evaluated)."""
        return self.scores[0] if self.scores else None

    def line(self) -> str:
        """``centroid (val): precision 0.91 · recall 0.88 · F1 0.89 · ...`` or why not."""
        where = f"{self.model} ({self.split})" if self.split else self.model
        if not self.scores:
            return f"{where}: {self.note or NOT_EVALUATED}"
        text = f"{where}: " + " · ".join(score.shown() for score in self.scores)
        if self.weakest:
            text += f" · weakest: {self.weakest}"
        return text


@dataclass(frozen=True)
class Quality:
    """What a training job's kind reports about its models, and the data they learnt from."""

    data: str = ""
    """A fingerprint of the training data's content ('' when unknown: never compared)."""
    models: tuple[ModelScores, ...] = ()
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    """What the job was asked to do (its parameters), to say what differs between runs."""

    def lines(self) -> list[str]:
        """One line per model and split, for the chat."""
        return [model.line() for model in self.models]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "data": self.data,
            "params": dict(self.params),
            "models": [
                {
                    "model": m.model,
                    "split": m.split,
                    "note": m.note,
                    "weakest": m.weakest,
                    "scores": [
                        {
                            "name": s.name,
                            "value": s.value,
                            "higher_is_better": s.higher_is_better,
                            "unit": s.unit,
                        }
                        for s in m.scores
                    ],
                }
                for m in self.models
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Quality:
        """The inverse of :meth:`to_dict`; a record it cannot read gives an empty Quality."""
        models = []
        for raw in data.get("models") or []:
            if not isinstance(raw, Mapping):
                continue
            scores = tuple(
                Score(
                    str(s.get("name", "")),
                    _number(s.get("value")),
                    bool(s.get("higher_is_better", True)),
                    str(s.get("unit", "")),
                )
                for s in raw.get("scores") or []
                if isinstance(s, Mapping)
            )
            models.append(
                ModelScores(
                    model=str(raw.get("model", "")),
                    split=str(raw.get("split", "")),
                    scores=scores,
                    note=str(raw.get("note", "")),
                    weakest=str(raw.get("weakest", "")),
                )
            )
        params = data.get("params")
        return cls(
            data=str(data.get("data", "")),
            models=tuple(models),
            params=dict(params) if isinstance(params, Mapping) else {},
        )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value else None  # NaN is not a number to show


def fingerprint(paths: Iterable[Path], *, chunk: int = 1024 * 1024) -> str:
    """A fingerprint of files' contents (in the order given, names left out): two runs on
    the same data have the same one wherever the files lie. Run it where the data is (a
    job's tools), not in the chat's event loop."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(b"\x00file\x00")
        with path.open("rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
    return digest.hexdigest()[:16]


def differing_params(now: Mapping[str, ParamValue], earlier: Mapping[str, ParamValue]) -> list[str]:
    """``epochs 10 → 20``, ``batch 4 → (default)``: what one run asked for differently."""
    lines = []
    for name in sorted(set(now) | set(earlier)):
        a, b = earlier.get(name), now.get(name)
        if a != b:
            lines.append(f"{name} {_param(a)} → {_param(b)}")
    return lines


def _param(value: ParamValue | None) -> str:
    if value is None:
        return "(default)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def comparison(now: Quality, earlier: Quality, earlier_id: int) -> list[str]:
    """How this run compares with an earlier one on the same data, model by model by the
    headline score: ``single_instance: mOKS 0.71 → 0.78 (+0.07) vs #12``; then what the
    runs asked for differently. Empty when nothing can be compared."""
    before = {(m.model, m.split): m for m in earlier.models}
    lines = []
    for model in now.models:
        old = before.get((model.model, model.split))
        new_score = model.headline
        old_score = old.headline if old is not None else None
        if new_score is None or old_score is None or new_score.name != old_score.name:
            continue
        if new_score.value is None or old_score.value is None:
            continue
        change = new_score.value - old_score.value
        better = change > 0 if new_score.higher_is_better else change < 0
        mark = "" if change == 0 else (" better" if better else " worse")
        unit = f" {new_score.unit}" if new_score.unit else ""
        lines.append(
            f"{model.model}: {new_score.name} {old_score.value:.3g} → {new_score.value:.3g}"
            f"{unit} ({change:+.3g}{mark}) vs #{earlier_id}"
        )
    if not lines:
        return []
    differ = differing_params(now.params, earlier.params)
    lines.append(
        "differing parameters: " + (", ".join(differ) if differ else "none (the same run again)")
    )
    return lines
