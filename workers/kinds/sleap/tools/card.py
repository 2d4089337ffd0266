"""The pictures of a finished SLEAP training: the card (per model, its loss curve above a
table of its held-out scores) and, for ``/compare``, two jobs' loss curves in one picture.

Sized for a phone: one column per model, large type, a table that says plainly when a model
was not evaluated. Runs in job subprocesses only (matplotlib).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers.kinds.sleap.progress import EpochRow, loss_curves
from workers.quality import ModelScores, Score

COLUMN_INCHES = 5.6
LOSS_INCHES = 3.6
ROW_INCHES = 0.36
NOTE_INCHES = 0.3
DPI = 120
WRAP = 58
JOB_COLOURS = ("tab:blue", "tab:orange")


@dataclass
class CardModel:
    """One model's column of the card: its title, epochs and held-out scores per split."""

    title: str
    rows: list[EpochRow]
    scores: list[ModelScores] = field(default_factory=list)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw_loss(ax: Any, rows: Sequence[EpochRow], title: str) -> None:
    train, val = loss_curves(rows)
    if train:
        ax.plot(*zip(*train, strict=True), "o-", label="train loss", markersize=3)
    if val:
        ax.plot(*zip(*val, strict=True), "s-", label="validation loss", markersize=3)
    _log_scale_if_wide(ax, [v for _, v in train + val])
    _axes_labels(ax, title)
    if train or val:
        ax.legend(fontsize=10)
    else:
        ax.text(0.5, 0.5, "no epoch logged", ha="center", va="center", transform=ax.transAxes)


def _axes_labels(ax: Any, title: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_title(title, fontsize=14, fontweight="bold")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def _log_scale_if_wide(ax: Any, values: Sequence[float]) -> None:
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > 20:
        ax.set_yscale("log")


def value_text(score: Score) -> str:
    """The value as the chat shows it (``0.712``, ``2.69 px``, ``—``)."""
    return score.shown()[len(score.name) + 1 :]


def table_rows(scores: Sequence[ModelScores]) -> tuple[list[str], list[list[str]]]:
    """The table of one model: a header (the evaluated splits) and one row per score."""
    evaluated = [s for s in scores if s.scores]
    header = ["", *(s.split or "held out" for s in evaluated)]
    names: list[str] = []
    for split in evaluated:
        names += [score.name for score in split.scores if score.name not in names]
    rows = []
    for name in names:
        row = [name]
        for split in evaluated:
            found = next((s for s in split.scores if s.name == name), None)
            row.append(value_text(found) if found is not None else "")
        rows.append(row)
    return header, rows


def _notes(scores: Sequence[ModelScores]) -> list[str]:
    """The lines under a model's table: why a split has no scores, and caveats."""
    lines = []
    for split in scores:
        if split.note:
            lines.append(f"{split.split}: {split.note}" if split.split else split.note)
    if not scores:
        lines.append("no held-out scores")
    return lines


def _draw_table(ax: Any, scores: Sequence[ModelScores], inches: float) -> None:
    """The scores table at the top of ``ax`` (``inches`` high), the notes under it."""
    ax.axis("off")
    header, rows = table_rows(scores)
    notes = _wrapped_notes(scores)
    share = min(1.0, (len(rows) + 1) * ROW_INCHES / inches) if rows else 0.0
    if rows:
        table = ax.table(
            cellText=rows, colLabels=header, cellLoc="center", bbox=[0.0, 1.0 - share, 1.0, share]
        )
        table.auto_set_font_size(False)
        table.set_fontsize(12)
        for (row, col), cell in table.get_celld().items():
            cell.set_edgecolor("#bbbbbb")
            if row == 0 or col == 0:
                cell.set_text_props(fontweight="bold")
            if row == 0:
                cell.set_facecolor("#e8e8e8")
            elif row == 1:
                cell.set_facecolor("#eef5ff")  # the headline score
    if notes:
        ax.text(0.0, 1.0 - share - 0.03, notes, ha="left", va="top", fontsize=10.5, style="italic")


def _wrapped_notes(scores: Sequence[ModelScores]) -> str:
    return "\n".join(textwrap.fill(line, WRAP) for line in _notes(scores))


def _table_inches(scores: Sequence[ModelScores]) -> float:
    _header, rows = table_rows(scores)
    notes = _wrapped_notes(scores)
    table = (len(rows) + 1) * ROW_INCHES if rows else 0.0
    note = (notes.count("\n") + 1) * NOTE_INCHES if notes else 0.0
    return table + note + 0.3


def draw_card(models: Sequence[CardModel], dest: Path) -> Path | None:
    """The training card: per model, its loss curve above the table of its held-out scores
    (and why a split has none). None when there is no model to show."""
    if not models:
        return None
    plt = _pyplot()
    table_inches = max(_table_inches(m.scores) for m in models)
    fig = plt.figure(
        figsize=(COLUMN_INCHES * len(models), LOSS_INCHES + table_inches + 0.3), dpi=DPI
    )
    grid = fig.add_gridspec(2, len(models), height_ratios=[LOSS_INCHES, table_inches])
    for column, model in enumerate(models):
        _draw_loss(fig.add_subplot(grid[0, column]), model.rows, model.title)
        _draw_table(fig.add_subplot(grid[1, column]), model.scores, table_inches)
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest)
    plt.close(fig)
    return dest


Curves = list[tuple[str, list[EpochRow]]]


def draw_comparison(jobs: Sequence[tuple[str, Curves]], dest: Path) -> Path | None:
    """Two (or more) jobs' loss curves, one panel per model (matched by title): each job in
    its own colour, train loss dashed and validation loss solid, named by ``jobs``' labels.
    None when no job has an epoch to draw."""
    titles: list[str] = []
    for _label, curves in jobs:
        titles += [title for title, rows in curves if rows and title not in titles]
    if not titles:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(titles), figsize=(COLUMN_INCHES * len(titles), 4.4), squeeze=False, dpi=DPI
    )
    for ax, title in zip(axes[0], titles, strict=True):
        values: list[float] = []
        for index, (label, curves) in enumerate(jobs):
            rows = next((r for t, r in curves if t == title), [])
            train, val = loss_curves(rows)
            colour = JOB_COLOURS[index % len(JOB_COLOURS)]
            if train:
                ax.plot(
                    *zip(*train, strict=True),
                    "o--",
                    color=colour,
                    markersize=3,
                    label=f"{label} train",
                )
            if val:
                ax.plot(
                    *zip(*val, strict=True),
                    "s-",
                    color=colour,
                    markersize=3,
                    label=f"{label} validation",
                )
            values += [v for _, v in train + val]
        _log_scale_if_wide(ax, values)
        _axes_labels(ax, title)
        ax.legend(fontsize=10)
    fig.suptitle(" vs ".join(label for label, _ in jobs), fontsize=14)
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest)
    plt.close(fig)
    return dest
