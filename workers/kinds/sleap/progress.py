"""sleap-nn's output, read line by line: the training log CSV, the progress bar, and the JSON
lines of ``sleap-nn predict --gui``. Pure parsing: nothing here touches files.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from workers.jobs import Progress
from workers.kinds.base import LIVE_SOURCE
from workers.kinds.sleap.plan import ModelPlan
from workers.progress import estimate_eta


@dataclass(frozen=True)
class EpochRow:
    """One row of sleap-nn's training_log.csv (written when an epoch's validation ends).

    ``train_loss`` is the previous epoch's: sleap-nn writes the row before the training
    loss of the epoch is aggregated.
    """

    epoch: int
    train_loss: float | None
    val_loss: float | None
    learning_rate: float | None = None


def parse_log_header(line: str) -> list[str] | None:
    """The column names if ``line`` is training_log.csv's header."""
    columns = [c.strip() for c in line.strip().split(",")]
    return columns if columns and columns[0] == "epoch" else None


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_log_row(header: Sequence[str], line: str) -> EpochRow | None:
    """One data row of training_log.csv, given its header; None for anything else."""
    cells = [c.strip() for c in line.strip().split(",")]
    if len(cells) != len(header) or cells[0] == "epoch":
        return None
    row = dict(zip(header, cells, strict=True))
    epoch = _number(row.get("epoch", ""))
    if epoch is None:
        return None
    return EpochRow(
        epoch=int(epoch),
        train_loss=_number(row.get("train/loss", "")),
        val_loss=_number(row.get("val/loss", "")),
        learning_rate=_number(row.get("learning_rate", "")),
    )


def parse_log(text: str) -> list[EpochRow]:
    """Every row of a training_log.csv text."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = parse_log_header(lines[0])
    if header is None:
        return []
    return [row for line in lines[1:] if (row := parse_log_row(header, line)) is not None]


def merge_history(earlier: Sequence[EpochRow], later: Sequence[EpochRow]) -> list[EpochRow]:
    """Rows of an interrupted run followed by the rows of its continuation."""
    if not later:
        return list(earlier)
    first = min(row.epoch for row in later)
    return [row for row in earlier if row.epoch < first] + list(later)


def _row_epoch(line: str) -> int | None:
    value = _number(line.split(",", 1)[0])
    return int(value) if value is not None else None


def merge_log_text(earlier: str, later: str) -> str:
    """The training_log.csv texts of a run and of its continuation, as one log."""
    old = [line for line in earlier.splitlines() if line.strip()]
    new = [line for line in later.splitlines() if line.strip()]
    if not new:
        return "\n".join(old) + "\n" if old else ""
    if not old:
        return "\n".join(new) + "\n"
    epochs = [e for line in new[1:] if (e := _row_epoch(line)) is not None]
    first = min(epochs) if epochs else None
    kept = [
        line
        for line in old[1:]
        if (e := _row_epoch(line)) is not None and (first is None or e < first)
    ]
    return "\n".join([new[0], *kept, *new[1:]]) + "\n"


def loss_curves(
    rows: Sequence[EpochRow],
) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(epoch, train loss) and (epoch, val loss) points, train loss moved to its own epoch."""
    train = [(row.epoch - 1, row.train_loss) for row in rows if row.train_loss is not None]
    val = [(row.epoch, row.val_loss) for row in rows if row.val_loss is not None]
    return [(e, v) for e, v in train if e >= 0], val


@dataclass(frozen=True)
class BarUpdate:
    """What one refresh of the training progress bar says (epoch counted from 0)."""

    epoch: int
    batch: int
    batches: int
    loss: float | None = None
    val_loss: float | None = None


_BAR = re.compile(r"Epoch (\d+):\s*\d+%\|[^|]*\|\s*(\d+)/(\d+)")
_BAR_LOSS = re.compile(r"(?<![\w/])(?:train/)?loss=([-+\d.eE]+|nan)")
_BAR_VAL = re.compile(r"val/loss=([-+\d.eE]+|nan)")


def parse_bar_line(line: str) -> BarUpdate | None:
    """``Epoch 1: 100%|###| 1/1 [00:02<00:00, loss=0.04, val/loss=0.05]`` -> BarUpdate."""
    match = _BAR.search(line)
    if match is None:
        return None
    loss = _BAR_LOSS.search(line)
    val = _BAR_VAL.search(line)
    return BarUpdate(
        epoch=int(match.group(1)),
        batch=int(match.group(2)),
        batches=int(match.group(3)),
        loss=_number(loss.group(1).rstrip(",]")) if loss else None,
        val_loss=_number(val.group(1).rstrip(",]")) if val else None,
    )


# -------------------------------------------------------------------------- inference progress


@dataclass(frozen=True)
class PredictUpdate:
    """One ``--gui`` progress line of ``sleap-nn predict``."""

    done: int
    total: int
    rate: float | None
    eta_s: float | None


@dataclass(frozen=True)
class PredictError:
    """The ``--gui`` error line of ``sleap-nn predict``."""

    type: str
    message: str


def parse_gui_line(line: str) -> PredictUpdate | PredictError | None:
    """``{"n_processed": 4, "n_total": 400, "rate": 3.5, "eta": 112.5}`` -> PredictUpdate."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if data.get("error"):
        return PredictError(str(data.get("type", "Error")), str(data.get("message", "")))
    try:
        done, total = int(data["n_processed"]), int(data["n_total"])
    except (KeyError, TypeError, ValueError):
        return None
    return PredictUpdate(
        done, total, _optional_float(data.get("rate")), _optional_float(data.get("eta"))
    )


def _optional_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


# ------------------------------------------------------------------------- live (ZMQ) progress


@dataclass(frozen=True)
class LiveEvent:
    """One message of sleap-nn's ZMQ progress publisher (epoch and batch counted from 0)."""

    event: str
    epoch: int | None = None
    batch: int | None = None
    loss: float | None = None
    val_loss: float | None = None
    wandb_url: str = ""


LIVE_EVENTS = frozenset({"train_begin", "epoch_begin", "batch_end", "epoch_end", "train_end"})


def _whole(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return int(value)


def parse_live_message(text: str) -> LiveEvent | None:
    """``{"event": "batch_end", "epoch": 0, "batch": 3, "logs": {"loss": 0.05}}`` ->
    LiveEvent; None for anything else (other events, broken or foreign messages)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("event") not in LIVE_EVENTS:
        return None
    logs = data.get("logs")
    logs = logs if isinstance(logs, dict) else {}
    url = data.get("wandb_url")
    return LiveEvent(
        event=str(data["event"]),
        epoch=_whole(data.get("epoch")),
        batch=_whole(data.get("batch")),
        loss=_optional_float(logs.get("loss", logs.get("train/loss"))),
        val_loss=_optional_float(logs.get("val/loss")),
        # Whether the page is shown is the runner's decision (on the configured W&B host).
        wandb_url=url if isinstance(url, str) and url.startswith(("https://", "http://")) else "",
    )


# How often step-level progress is passed on (epoch ends and the end always are).
LIVE_EVERY_S = 0.5
RATE_WINDOW = 50


@dataclass
class LiveState:
    """What the live messages have said so far about one model's training."""

    epoch: int = 0
    batch: int = -1
    batches: int = 0
    loss: float | None = None
    val_loss: float | None = None
    wandb_url: str = ""
    last_sent: float = 0.0
    seen: bool = False
    epochs_done: int = 0

    def __post_init__(self) -> None:
        self.times: deque[tuple[float, int]] = deque(maxlen=RATE_WINDOW)

    def steps_per_second(self) -> float | None:
        """Training steps per second over the last few dozen steps."""
        if len(self.times) < 2:
            return None
        (t0, s0), (t1, s1) = self.times[0], self.times[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 and s1 > s0 else None


def live_eta(state: LiveState, max_epochs: int, batches: int, rate: float | None) -> float | None:
    """Seconds left at the current pace, counting what is left of the current epoch."""
    if not rate or not batches:
        return None
    left = (max_epochs - state.epoch - 1) * batches + max(0, batches - state.batch - 1)
    return max(0, left) / rate


# ---------------------------------------------------------------------------------- trackers


class TrainingTracker:
    """Progress of one model's training from training_log.csv, or the progress bar."""

    def __init__(self, model: ModelPlan, models: int, now: float | None = None) -> None:
        self.model = model
        self.models = models
        self.started = time.time() if now is None else now
        self.header: list[str] | None = None
        self.row: EpochRow | None = None
        self.bar: BarUpdate | None = None
        self.live = LiveState(batches=model.steps_per_epoch)

    def parse(self, source: str, line: str, now: float | None = None) -> Progress | None:
        """Feed one line (from the CSV, the console or the live channel); new progress or
        None."""
        now = time.time() if now is None else now
        if source == LIVE_SOURCE:
            return self._live(line, now)
        if source == "training_log.csv":
            header = parse_log_header(line)
            if header is not None:
                self.header = header
                return None
            row = parse_log_row(self.header, line) if self.header else None
            if row is None:
                return None
            self.row = row
        else:
            bar = parse_bar_line(line)
            if bar is None or (self.row is not None and bar.epoch <= self.row.epoch):
                return None
            self.bar = bar
        if self.live.seen:
            return None  # the live messages say more, and sooner
        return self.progress(now)

    def _live(self, text: str, now: float) -> Progress | None:
        event = parse_live_message(text)
        if event is None:
            return None
        state = self.live
        state.seen = True
        if event.wandb_url:
            state.wandb_url = event.wandb_url
        if event.epoch is not None:
            state.epoch = event.epoch
        if event.event == "epoch_begin":
            state.batch = -1
            return None
        if event.event == "batch_end" and event.batch is not None:
            state.batch = event.batch
            if event.loss is not None:
                state.loss = event.loss
            step = state.epoch * max(state.batches, event.batch + 1) + event.batch
            state.times.append((now, step))
            if now - state.last_sent < LIVE_EVERY_S:
                return None
        elif event.event == "epoch_end":
            state.epochs_done = state.epoch + 1
            state.batches = max(state.batches, state.batch + 1)
            state.batch = state.batches - 1
            if event.val_loss is not None:
                state.val_loss = event.val_loss
        elif event.event == "train_begin" and not state.wandb_url:
            return None
        state.last_sent = now
        return self.live_progress(now)

    def live_progress(self, now: float) -> Progress:
        """Progress from the live messages: the step within the epoch, its loss, the pace."""
        state, total = self.live, self.model.max_epochs
        batches = state.batches
        within = (state.batch + 1) / batches if batches else 0.0
        done = min(float(total), state.epoch + min(1.0, within))
        text = f"epoch {state.epoch + 1} of {total}"
        if state.batch >= 0:
            text += f" · step {state.batch + 1}" + (f" of {batches}" if batches else "")
        rate = state.steps_per_second()
        metrics: dict[str, float] = {}
        if state.loss is not None:
            metrics["train_loss"] = state.loss
        if state.val_loss is not None:
            metrics["val_loss"] = state.val_loss
        if rate is not None:
            text += f" · {rate:.3g} steps/s"
            metrics["steps_per_s"] = rate
        losses = {k: v for k, v in metrics.items() if k != "steps_per_s"}
        eta = live_eta(state, total, batches, rate)
        if eta is None:
            start = float(self.model.start_epoch)
            eta = estimate_eta(self.started, now, done - start, total - start)
        return Progress(
            fraction=self._fraction(done),
            message=self._message(text, losses),
            eta_s=eta,
            step=max(state.epochs_done, self.model.start_epoch),
            total=total,
            metrics=metrics,
            updated_at=now,
            link=state.wandb_url,
        )

    def _message(self, text: str, losses: dict[str, float]) -> str:
        """``model 1 of 2: centroid · epoch 2 of 4 · … · train loss 0.04 · val loss 0.03``."""
        text += "".join(
            f" · {name.replace('_', ' ')} {value:.4g}" for name, value in losses.items()
        )
        if self.models > 1:
            text = f"model {self.model.index} of {self.models}: {self.model.head} · {text}"
        return text

    def _fraction(self, epochs_done: float) -> float | None:
        """How far the whole job's training is, this model's share counted in."""
        total = self.model.max_epochs
        fraction = min(1.0, epochs_done / total) if total else None
        if fraction is not None and self.models > 1:
            fraction = (self.model.index - 1 + fraction) / self.models
        return fraction

    def progress(self, now: float) -> Progress:
        """Progress from the newest epoch row, and the bar within the epoch after it."""
        total = self.model.max_epochs
        done = float(self.row.epoch + 1) if self.row else float(self.model.start_epoch)
        text = ""
        bar = self.bar
        if bar is not None and bar.epoch + 1 > done and bar.batches:
            done = bar.epoch + bar.batch / bar.batches
            text = f"epoch {bar.epoch + 1} of {total} · batch {bar.batch} of {bar.batches}"
        else:
            text = f"epoch {int(done)} of {total}"
        metrics: dict[str, float] = {}
        if self.row is not None:
            if self.row.train_loss is not None:
                metrics["train_loss"] = self.row.train_loss
            if self.row.val_loss is not None:
                metrics["val_loss"] = self.row.val_loss
        elif bar is not None and bar.loss is not None:
            metrics["train_loss"] = bar.loss
        start = float(self.model.start_epoch)
        eta = estimate_eta(self.started, now, done - start, total - start)
        return Progress(
            fraction=self._fraction(done),
            message=self._message(text, metrics),
            eta_s=eta,
            step=int(done),
            total=total,
            metrics=metrics,
            updated_at=now,
        )


class PredictTracker:
    """Progress of ``sleap-nn predict --gui`` from its JSON lines."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def parse(self, source: str, line: str) -> Progress | None:
        """One output line; new progress or None."""
        update = parse_gui_line(line)
        if not isinstance(update, PredictUpdate):
            return None
        return predict_progress(update, self.prefix)


def predict_progress(update: PredictUpdate, prefix: str = "") -> Progress:
    """``frames 40 of 400 · 3.5 frames/s`` with the ETA sleap-nn computed."""
    text = f"frames {update.done} of {update.total}"
    if update.rate:
        text += f" · {update.rate:.1f} frames/s"
    return Progress(
        fraction=min(1.0, update.done / update.total) if update.total else None,
        message=f"{prefix} · {text}" if prefix else text,
        eta_s=update.eta_s,
        step=update.done,
        total=update.total,
        metrics={"fps": update.rate} if update.rate else {},
    )
