"""The picture of a spaCy training so far: each component's loss, and the scores, by step.

Runs in a subprocess (matplotlib); reads the training log colabot's logger writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workers.kinds.spacy.report import read_training_log


def curves(
    events: list[dict[str, Any]],
) -> tuple[dict[str, list[tuple[int, float]]], dict[str, list[tuple[int, float]]]]:
    """(losses by component, scores by name) as (step, value) points, from the log's
    evaluations; scores are on spaCy's 0-1 scale."""
    losses: dict[str, list[tuple[int, float]]] = {}
    scores: dict[str, list[tuple[int, float]]] = {}
    for event in events:
        if event.get("event") != "eval":
            continue
        step = int(event.get("step") or 0)
        for name, value in dict(event.get("losses") or {}).items():
            losses.setdefault(str(name), []).append((step, float(value)))
        scores.setdefault("score", []).append((step, float(event.get("score") or 0.0)))
        for name, value in dict(event.get("scores") or {}).items():
            if _is_main_score(str(name)) and isinstance(value, int | float):
                scores.setdefault(str(name), []).append((step, float(value)))
    return losses, scores


def _is_main_score(name: str) -> bool:
    """The scores worth a line: F-scores and accuracies, not per-label or speed figures."""
    return name.endswith(("_f", "_acc", "_las", "_uas")) or name == "cats_score"


def draw(series: tuple[Mapping[str, list[tuple[int, float]]], ...], dest: Path) -> Path | None:
    """Two panels (losses, scores); None when there is not one evaluation to draw."""
    losses, scores = series
    if not any(losses.values()) and not any(scores.values()):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), dpi=110)
    for ax, lines, title in ((axes[0], losses, "loss"), (axes[1], scores, "score")):
        for name, points in lines.items():
            if points:
                ax.plot(*zip(*points, strict=True), "o-", label=name, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if lines:
            ax.legend()
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest)
    plt.close(fig)
    return dest


def plot_training(log: Path, dest: Path) -> Path | None:
    """Draw the training log at ``log`` into ``dest``; None when it holds no evaluation."""
    return draw(curves(read_training_log(log)), dest)
