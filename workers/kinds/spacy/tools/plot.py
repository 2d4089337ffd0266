"""The pictures of a spaCy training: each component's loss and the scores, by step (so far,
or of two jobs side by side for /compare), and the card that ends a training: those curves
over a table of model-best's held-out scores per component.

Runs in a subprocess (matplotlib); reads the training log colabot's logger writes and
model-best's meta.json.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.kinds.spacy.report import LABELS_SHOWN, PipelineScores, read_training_log

Points = list[tuple[int, float]]
Series = tuple[Mapping[str, Points], Mapping[str, Points]]
"""(losses by component, scores by name)."""


@dataclass(frozen=True)
class Run:
    """One job's curves, named for the legend (``#12``; '' when only one job is drawn)."""

    name: str
    series: Series


def curves(events: list[dict[str, Any]]) -> tuple[dict[str, Points], dict[str, Points]]:
    """(losses by component, scores by name) as (step, value) points, from the log's
    evaluations; scores are on spaCy's 0-1 scale."""
    losses: dict[str, Points] = {}
    scores: dict[str, Points] = {}
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
    """The scores worth a line: F-scores and accuracies, not per-label or speed figures,
    nor the tokenizer's (always 1.0 when trained from gold tokens) or textcat's repeats."""
    if name == "cats_score":
        return True
    if name.startswith(("token_", "cats_")):
        return False
    return name.endswith(("_f", "_acc", "_las", "_uas"))


def _has_points(runs: Sequence[Run]) -> bool:
    return any(points for run in runs for lines in run.series for points in lines.values())


def _draw_curves(axes: Sequence[Any], runs: Sequence[Run]) -> None:
    """Losses on the first axes, scores on the second. A curve has one colour in every
    job; each job has its own line style."""
    styles = ("o-", "s--", "^:", "d-.")
    for index, (ax, title) in enumerate(zip(axes, ("loss", "score"), strict=True)):
        names = list(dict.fromkeys(name for run in runs for name in run.series[index]))
        for number, run in enumerate(runs):
            for name, points in run.series[index].items():
                if points:
                    label = f"{run.name} {name}" if run.name else name
                    colour = f"C{names.index(name) % 10}"
                    style = styles[number % len(styles)]
                    ax.plot(*zip(*points, strict=True), style, color=colour, label=label, ms=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw(runs: Sequence[Run], dest: Path, title: str = "") -> Path | None:
    """Two panels (losses, scores) with every run's lines; None when there is not one
    evaluation to draw."""
    if not _has_points(runs):
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), dpi=110)
    _draw_curves(axes, runs)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest)
    plt.close(fig)
    return dest


def plot_training(log: Path, dest: Path) -> Path | None:
    """Draw the training log at ``log`` into ``dest``; None when it holds no evaluation."""
    return draw([Run("", curves(read_training_log(log)))], dest)


def plot_compared(logs: Sequence[tuple[str, Path]], dest: Path) -> Path | None:
    """Both jobs' curves in one picture, each named (``#12``); None when neither has one
    evaluation to draw."""
    runs = [Run(name, curves(read_training_log(log))) for name, log in logs]
    title = " vs ".join(name for name, _ in logs)
    return draw(runs, dest, title)


def score_rows(scores: PipelineScores) -> list[list[str]]:
    """The card's table: a row per component (its scores, its weakest label), then a row
    per label (weakest first, at most :data:`LABELS_SHOWN`)."""
    rows = []
    for component in scores.components:
        model = component.scores
        shown = " · ".join(s.shown() for s in model.scores) or model.note
        rows.append([model.model, shown, model.weakest])
        for label in component.labels[:LABELS_SHOWN]:
            numbers = " · ".join(
                f"{name} {'—' if value is None else f'{value:.2f}'}"
                for name, value in label.scored()
            )
            rows.append([f"   {label.label}", numbers, ""])
        rest = len(component.labels) - LABELS_SHOWN
        if rest > 0:
            rows.append([f"   and {rest} more labels", "(in model-best/meta.json)", ""])
        if component.unseen:
            rows.append(["   not in the dev data", ", ".join(component.unseen[:LABELS_SHOWN]), ""])
    return rows


def draw_card(
    events: list[dict[str, Any]], scores: PipelineScores, dest: Path, title: str
) -> Path | None:
    """The end-of-training card: the loss and score curves over the table of model-best's
    dev scores; None when there is neither a curve nor a score to show."""
    runs = [Run("", curves(events))]
    rows = score_rows(scores)
    if not _has_points(runs) and not rows:
        return None
    plt = _pyplot()
    table_height = 0.6 + 0.32 * len(rows)
    fig = plt.figure(figsize=(11, 3.8 + table_height), dpi=110)
    grid = fig.add_gridspec(2, 2, height_ratios=[3.8, table_height])
    _draw_curves([fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])], runs)
    ax = fig.add_subplot(grid[1, :])
    ax.axis("off")
    if rows:
        table = ax.table(
            cellText=rows,
            colLabels=["component / label", "model-best on the dev data", "weakest label"],
            colWidths=[0.22, 0.58, 0.2],
            cellLoc="left",
            loc="upper center",
        )
        table.auto_set_font_size(False)
        table.set_fontsize(9)
        table.scale(1, 1.3)
    fig.suptitle(title)
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest)
    plt.close(fig)
    return dest
