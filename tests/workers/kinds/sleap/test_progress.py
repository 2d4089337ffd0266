"""Reading sleap-nn's output: the training log, the progress bar, predict's JSON lines."""

from __future__ import annotations

import json

import pytest

from workers.kinds.base import LIVE_SOURCE
from workers.kinds.sleap.plan import ModelPlan
from workers.kinds.sleap.progress import (
    BarUpdate,
    EpochRow,
    LiveEvent,
    PredictError,
    PredictTracker,
    PredictUpdate,
    TrainingTracker,
    loss_curves,
    merge_history,
    merge_log_text,
    parse_bar_line,
    parse_gui_line,
    parse_live_message,
    parse_log,
    parse_log_header,
    parse_log_row,
)

HEADER = "epoch,train/loss,val/loss,learning_rate,train/time,val/time,train/confmaps/head"


LOG = f"""{HEADER}
0,,0.03995533287525177,,,0.0145,
1,0.040249571204185486,0.03957671299576759,9.99e-05,2.86,0.0138,0.0207
"""


def test_training_log_rows() -> None:
    header = parse_log_header(HEADER)
    assert header is not None and header[:3] == ["epoch", "train/loss", "val/loss"]
    first = parse_log_row(header, "0,,0.0399,,,0.0145,")
    assert first == EpochRow(epoch=0, train_loss=None, val_loss=0.0399, learning_rate=None)
    assert parse_log_row(header, HEADER) is None
    assert parse_log_row(header, "1,0.04") is None
    assert parse_log_header("0,,0.1") is None
    rows = parse_log(LOG)
    assert [r.epoch for r in rows] == [0, 1]
    assert rows[1].train_loss == pytest.approx(0.04025, rel=1e-3)


def test_loss_curves_put_the_train_loss_on_its_own_epoch() -> None:
    train, val = loss_curves(parse_log(LOG))
    assert [e for e, _ in train] == [0]
    assert [e for e, _ in val] == [0, 1]


def test_a_continued_log_follows_the_earlier_epochs() -> None:
    earlier = parse_log(LOG)
    later = [EpochRow(1, 0.03, 0.02), EpochRow(2, 0.02, 0.01)]
    assert [r.epoch for r in merge_history(earlier, later)] == [0, 1, 2]
    later_text = f"{HEADER}\n1,0.03,0.02,,,,\n2,0.02,0.01,,,,\n"
    merged = merge_log_text(LOG, later_text)
    assert [r.epoch for r in parse_log(merged)] == [0, 1, 2]
    assert parse_log(merged)[1].val_loss == 0.02
    assert merge_log_text("", later_text) == later_text
    assert parse_log(merge_log_text(LOG, "")) == parse_log(LOG)


def test_progress_bar_lines() -> None:
    line = "Epoch 1: 100%|██████████| 1/1 [00:00<00:00, 10.26it/s, loss=0.0401, val/loss=0.0400]"
    assert parse_bar_line(line) == BarUpdate(1, 1, 1, 0.0401, 0.04)
    partial = parse_bar_line("Epoch 0:  40%|████      | 4/10 [00:01<00:02,  3.1it/s]")
    assert partial == BarUpdate(0, 4, 10, None, None)
    assert parse_bar_line("2026-11-21 20:22:35 | Training on cpu accelerator") is None


def test_gui_json_lines() -> None:
    line = '{"n_processed": 4, "n_total": 400, "rate": 3.5, "eta": 112.5}'
    assert parse_gui_line(line) == PredictUpdate(4, 400, 3.5, 112.5)
    error = '{"error": true, "type": "FileNotFoundError", "message": "Model path does not exist"}'
    assert parse_gui_line(error) == PredictError("FileNotFoundError", "Model path does not exist")
    assert parse_gui_line("{not json") is None
    assert parse_gui_line('{"n_processed": "x"}') is None
    assert parse_gui_line("Predicting... 100%") is None


def test_training_progress_from_the_csv_with_an_eta() -> None:
    model = ModelPlan(1, "centroid", "run", "c.yaml", "r", "r", max_epochs=4)
    tracker = TrainingTracker(model, models=2, now=100.0)
    assert tracker.parse("training_log.csv", HEADER, now=101.0) is None
    progress = tracker.parse("training_log.csv", "1,0.04,0.03,,,,", now=110.0)
    assert progress is not None
    assert progress.message == (
        "model 1 of 2: centroid · epoch 2 of 4 · train loss 0.04 · val loss 0.03"
    )
    assert progress.fraction == pytest.approx(0.25)
    assert progress.eta_s == pytest.approx(10.0)
    assert progress.metrics == {"train_loss": 0.04, "val_loss": 0.03}


def test_training_progress_from_the_bar_between_rows() -> None:
    model = ModelPlan(1, "single_instance", "run", "c.yaml", "r", "r", max_epochs=10)
    tracker = TrainingTracker(model, models=1, now=0.0)
    bar = "Epoch 2:  50%|█████     | 5/10 [00:01<00:01, loss=0.05]"
    progress = tracker.parse("output", bar, now=5.0)
    assert progress is not None
    assert progress.message == "epoch 3 of 10 · batch 5 of 10 · train loss 0.05"
    assert progress.fraction == pytest.approx(0.25)
    tracker.parse("training_log.csv", HEADER, now=6.0)
    tracker.parse("training_log.csv", "2,0.04,0.03,,,,", now=6.0)
    assert tracker.parse("output", "Epoch 2: 100%|##| 10/10 [00:02<00:00]", now=7.0) is None


def test_a_resumed_training_counts_from_where_it_was() -> None:
    model = ModelPlan(1, "single_instance", "run", "c.yaml", "r", "r", max_epochs=4, start_epoch=2)
    tracker = TrainingTracker(model, models=1, now=0.0)
    tracker.parse("training_log.csv", HEADER)
    progress = tracker.parse("training_log.csv", "2,0.04,0.03,,,,", now=4.0)
    assert progress is not None and progress.message.startswith("epoch 3 of 4")
    assert progress.eta_s == pytest.approx(4.0)


def test_predict_progress() -> None:
    tracker = PredictTracker()
    progress = tracker.parse("output", '{"n_processed": 40, "n_total": 400, "rate": 8, "eta": 45}')
    assert progress is not None
    assert progress.message == "frames 40 of 400 · 8.0 frames/s"
    assert progress.fraction == pytest.approx(0.1) and progress.eta_s == 45
    assert tracker.parse("output", '{"error": true, "type": "E", "message": "m"}') is None


def _live(event: str, **fields: object) -> str:
    """A message as sleap-nn's ProgressReporterZMQ sends it (jsonpickle of a plain dict)."""
    return json.dumps({"what": "", "event": event, "logs": None, **fields})


def test_live_messages_parse_and_foreign_ones_are_ignored() -> None:
    batch = _live("batch_end", epoch=1, batch=4, logs={"loss": 0.25, "val/loss": 0.5})
    assert parse_live_message(batch) == LiveEvent("batch_end", 1, 4, 0.25, 0.5)
    begin = _live("train_begin", wandb_url="https://wandb.ai/lab/p/runs/abc")
    assert parse_live_message(begin) == LiveEvent(
        "train_begin", wandb_url="https://wandb.ai/lab/p/runs/abc"
    )
    assert parse_live_message(_live("train_begin", wandb_url="javascript:x")) == LiveEvent(
        "train_begin"
    )
    # Any web page is read; whether it is shown (on the W&B host) is the runner's decision.
    other = _live("train_begin", wandb_url="http://wandb.lab.example/lab/p/runs/abc")
    assert parse_live_message(other) == LiveEvent(
        "train_begin", wandb_url="http://wandb.lab.example/lab/p/runs/abc"
    )
    for foreign in ("", "not json", "[1]", _live("batch_start", batch=1), '{"event": 3}'):
        assert parse_live_message(foreign) is None
    odd = _live("batch_end", epoch="x", batch=True, logs={"loss": "nan"})
    assert parse_live_message(odd) == LiveEvent("batch_end")


def test_live_progress_counts_steps_within_the_epoch_with_a_pace_and_an_eta() -> None:
    model = ModelPlan(1, "centroid", "run", "c.yaml", "r", "r", max_epochs=3, steps_per_epoch=10)
    tracker = TrainingTracker(model, models=2, now=0.0)
    assert tracker.parse(LIVE_SOURCE, _live("epoch_begin", epoch=0), now=1.0) is None
    first = tracker.parse(
        LIVE_SOURCE, _live("batch_end", epoch=0, batch=0, logs={"loss": 0.9}), now=2.0
    )
    assert first is not None
    assert first.message == "model 1 of 2: centroid · epoch 1 of 3 · step 1 of 10 · train loss 0.9"
    # Within half a second nothing new is passed on; then the pace and the ETA come.
    quiet = tracker.parse(
        LIVE_SOURCE, _live("batch_end", epoch=0, batch=1, logs={"loss": 0.8}), now=2.2
    )
    assert quiet is None
    later = tracker.parse(
        LIVE_SOURCE, _live("batch_end", epoch=0, batch=4, logs={"loss": 0.5}), now=4.0
    )
    assert later is not None
    assert later.message.startswith(
        "model 1 of 2: centroid · epoch 1 of 3 · step 5 of 10 · 2 steps/s"
    )
    assert later.metrics == {"train_loss": 0.5, "steps_per_s": 2.0}
    assert later.eta_s == pytest.approx((2 * 10 + 5) / 2.0)
    assert later.fraction == pytest.approx((5 / 10 / 3) / 2)
    assert later.step == 0
    end = tracker.parse(
        LIVE_SOURCE, _live("epoch_end", epoch=0, logs={"loss": 0.4, "val/loss": 0.3}), now=5.0
    )
    assert end is not None and end.step == 1 and end.metrics["val_loss"] == 0.3
    # The CSV row of that epoch adds nothing the live messages did not say first.
    assert tracker.parse("training_log.csv", HEADER, now=5.5) is None
    assert tracker.parse("training_log.csv", "0,,0.3,,,,", now=5.6) is None


def test_live_progress_learns_the_epoch_length_when_the_config_does_not_say() -> None:
    model = ModelPlan(1, "single_instance", "run", "c.yaml", "r", "r", max_epochs=2)
    tracker = TrainingTracker(model, models=1, now=0.0)
    unknown = tracker.parse(
        LIVE_SOURCE, _live("batch_end", epoch=0, batch=2, logs={"loss": 1}), now=1.0
    )
    assert unknown is not None and unknown.message == "epoch 1 of 2 · step 3 · train loss 1"
    tracker.parse(LIVE_SOURCE, _live("batch_end", epoch=0, batch=5), now=2.0)
    tracker.parse(LIVE_SOURCE, _live("epoch_end", epoch=0, logs={"val/loss": 0.5}), now=3.0)
    known = tracker.parse(LIVE_SOURCE, _live("batch_end", epoch=1, batch=0), now=4.0)
    assert known is not None and "epoch 2 of 2 · step 1 of 6" in known.message
