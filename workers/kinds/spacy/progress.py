"""Progress of spaCy steps, read from their output lines: the training logger's events or
else spaCy's console table, a project's commands, and the inference program's counts.

Everything here is pure parsing; it runs in the bot process.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from workers.jobs import Progress
from workers.kinds.spacy.plan import MACHINE_PREFIX
from workers.progress import StepCounter

if TYPE_CHECKING:
    from workers.kinds.base import JobContext

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


def is_number(value: Any) -> bool:
    """Whether a value is an int or float (not a bool)."""
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
        scores = {k: float(v) for k, v in dict(event.get("scores") or {}).items() if is_number(v)}
        keys = [k for k, w in self._weights.items() if w is not None and k in scores]
        losses = {k: float(v) for k, v in dict(event.get("losses") or {}).items() if is_number(v)}
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
