"""What the chat is told about a SLEAP job that ran: one line per trained model and per
predicted video, in words. Pure text; the tools fill in the numbers."""

from __future__ import annotations

from collections.abc import Sequence

from workers.quality import ModelScores


def count(n: int, noun: str) -> str:
    """``1 epoch``, ``3 epochs``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def model_line(
    head: str, epochs: int, best_val: float | None, stopped_of: int | None = None
) -> str:
    """``centroid: 12 epochs, best validation loss 0.0031``; a model stopped early says
    ``centroid: stopped early at epoch 3 of 10, ...``."""
    loss = f", best validation loss {best_val:.4g}" if best_val is not None else ""
    if stopped_of is not None:
        return f"{head}: stopped early at epoch {epochs} of {stopped_of}{loss}"
    return f"{head}: {count(epochs, 'epoch')}{loss}"


def training_summary(lines: list[str]) -> str:
    """``Trained 2 models: centroid: ...; centered_instance: ...``."""
    many = len(lines) > 1
    return f"Trained {len(lines)} model{'s' if many else ''}: " + "; ".join(lines)


def prediction_line(source: str, frames: int, instances: int) -> str:
    """``predicted 40 frames of clip.mp4: 80 instances (2.00 per frame)``."""
    per = f" ({instances / frames:.2f} per frame)" if frames else ""
    return f"predicted {count(frames, 'frame')} of {source}: {count(instances, 'instance')}{per}"


def no_predictions_line(source: str) -> str:
    """The line for a video with no frames to run on."""
    return f"no predictions for {source} (no frames to run on)"


def joined(earlier: str, lines: list[str]) -> str:
    """A summary with the prediction lines after the training one, the first capitalised."""
    text = "; ".join(lines)
    return f"{earlier}\n{text[:1].upper()}{text[1:]}".strip()


def held_out_lines(models: Sequence[ModelScores]) -> list[str]:
    """One line per model and held-out split: ``single_instance (val): mOKS 0.712 · ...``, or
    why sleap-nn scored nothing. A caveat about scores follows on a line of its own, so the
    score lines are exactly the kept quality's (:meth:`workers.quality.Quality.lines`)."""
    lines = []
    for model in models:
        lines.append(model.line())
        if model.scores and model.note:
            where = f"{model.model} ({model.split})" if model.split else model.model
            lines.append(f"note on {where}: {model.note}")
    return lines
