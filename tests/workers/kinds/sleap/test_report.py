"""The summaries of finished SLEAP jobs."""

from __future__ import annotations

from workers.kinds.sleap.report import (
    joined,
    model_line,
    no_predictions_line,
    prediction_line,
    training_summary,
)


def test_training_lines_and_summary() -> None:
    first = model_line("centroid", 12, 0.003141)
    second = model_line("centered_instance", 1, None)
    assert first == "centroid: 12 epochs, best validation loss 0.003141"
    assert second == "centered_instance: 1 epoch"
    assert training_summary([first]) == f"Trained 1 model: {first}"
    assert training_summary([first, second]) == f"Trained 2 models: {first}; {second}"


def test_prediction_lines_follow_the_training_summary() -> None:
    line = prediction_line("clip.mp4", 40, 80)
    assert line == "predicted 40 frames of clip.mp4: 80 instances (2.00 per frame)"
    assert prediction_line("one.mp4", 0, 0) == "predicted 0 frames of one.mp4: 0 instances"
    empty = no_predictions_line("blank.mp4")
    assert joined("Trained 1 model: x", [line, empty]) == (
        f"Trained 1 model: x\nP{line[1:]}; {empty}"
    )
    assert joined("", [empty]) == "No predictions for blank.mp4 (no frames to run on)"
