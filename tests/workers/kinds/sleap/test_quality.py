"""How good a SLEAP model is: sleap-nn's metrics files read as held-out scores (every key
guarded, a broken file in one line), the training card, and the training data's fingerprint.

The real trainings whose scores must equal sleap-nn's files are in test_kind.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from workers.kinds.sleap.progress import EpochRow
from workers.kinds.sleap.report import held_out_lines
from workers.kinds.sleap.tools.card import CardModel, draw_card, draw_comparison, table_rows
from workers.kinds.sleap.tools.labels import check_labels
from workers.kinds.sleap.tools.metrics import (
    FOUND_NOTHING,
    GIVEN_CENTROIDS,
    NOTHING_WRITTEN,
    held_out,
    scores_of,
)
from workers.kinds.sleap.tools.train_inputs import data_fingerprint, open_training_input
from workers.quality import ModelScores, Score, fingerprint

POSE: dict[str, Any] = {
    "voc_metrics": {"oks_voc.mAP": 0.5, "oks_voc.mAR": 0.625, "pck_voc.mAP": 0.9},
    "mOKS": {"mOKS": 0.71},
    "distance_metrics": {"avg": 4.2, "p50": 2.69, "p90": 8.0, "p95": 8.43},
    "pck_metrics": {"mPCK": 0.6167, "PCK@5": 0.5833, "PCK@10": 1.0},
    "visibility_metrics": {"precision": 1.0, "recall": 1.0},
}
CENTROID: dict[str, Any] = {
    "detection_metrics": {"precision": 1.0, "recall": 0.75, "f1": 0.857, "p50": 5.5},
    "distance_metrics": {"avg": 9.46, "p50": 5.52, "p90": 19.53, "p95": 21.5},
}


def _values(scores: tuple[Score, ...]) -> list[tuple[str, float | None, bool, str]]:
    return [(s.name, s.value, s.higher_is_better, s.unit) for s in scores]


def _run(folder: Path, **metrics: object) -> Path:
    """A run folder holding the given ``metrics.<split>.json`` texts (or objects)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, content in metrics.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (folder / f"metrics.{split.replace('_', '.')}.json").write_text(text)
    return folder


def test_pose_and_centroid_scores_come_in_headline_order() -> None:
    assert _values(scores_of(POSE, "single_instance")) == [
        ("mOKS", 0.71, True, ""),
        ("OKS mAP", 0.5, True, ""),
        ("OKS mAR", 0.625, True, ""),
        ("mPCK", 0.6167, True, ""),
        ("PCK@5px", 0.5833, True, ""),
        ("PCK@10px", 1.0, True, ""),
        ("distance p50", 2.69, False, "px"),
        ("distance p95", 8.43, False, "px"),
    ]
    assert _values(scores_of(CENTROID, "centroid")) == [
        ("F1", 0.857, True, ""),
        ("precision", 1.0, True, ""),
        ("recall", 0.75, True, ""),
        ("distance p50", 5.52, False, "px"),
        ("distance p90", 19.53, False, "px"),
    ]


def test_every_key_is_guarded() -> None:
    # What sleap-nn writes when no instance matched: the int 0 for mAP/mAR and null for the
    # rest; and what a damaged file could hold instead of numbers.
    unmatched = {
        "voc_metrics": {"oks_voc.mAP": 0, "oks_voc.mAR": 0},
        "mOKS": {"mOKS": None},
        "distance_metrics": {"p50": None, "p95": "NaN"},
        "pck_metrics": [],
    }
    assert [s.value for s in scores_of(unmatched, "centered_instance")] == [
        None,
        0.0,
        0.0,
        None,
        None,
        None,
        None,
        None,
    ]
    odd = {"detection_metrics": {"f1": True, "precision": 1e400, "recall": "1"}}
    assert [s.value for s in scores_of(odd, "centroid")] == [None] * 5
    assert [s.value for s in scores_of({}, "centroid")] == [None] * 5
    line = held_out_lines([ModelScores("centered_instance", "val", scores_of(unmatched, ""))])
    assert line == [
        "centered_instance (val): mOKS — · OKS mAP 0.000 · OKS mAR 0.000 · mPCK — · "
        "PCK@5px — · PCK@10px — · distance p50 — · distance p95 —"
    ]


def test_a_malformed_metrics_file_is_one_line(tmp_path: Path) -> None:
    broken = _run(tmp_path / "broken", val_0='{"mOKS": {"mOKS": 0.5}')
    listed = _run(tmp_path / "listed", val_0="[0.5, 0.7]")
    binary = _run(tmp_path / "binary")
    (binary / "metrics.val.0.json").write_bytes(b"\xff\xfe\x00garbage")
    lines = [
        *held_out_lines(held_out("single_instance", "single_instance", broken)),
        *held_out_lines(held_out("single_instance", "single_instance", listed)),
        *held_out_lines(held_out("centroid", "centroid", binary)),
    ]
    assert lines == [
        "single_instance (val): metrics.val.0.json is not valid JSON (Expecting ',' delimiter: "
        "line 1 column 23 (char 22))",
        "single_instance (val): metrics.val.0.json holds no metrics (a JSON list, not an object)",
        "centroid (val): metrics.val.0.json cannot be read ('utf-8' codec can't decode byte "
        "0xff in position 0: invalid start byte)",
    ]


def test_held_out_splits_never_include_train_and_say_why_one_is_missing(tmp_path: Path) -> None:
    run = _run(tmp_path / "run", train_0=POSE, val_0=POSE)
    (run / "training_config.yaml").write_text("data_config:\n  test_file_path: [a.slp]\n")
    found = held_out("centered_instance", "centered_instance", run)
    assert [(m.split, bool(m.scores)) for m in found] == [("val", True), ("test", False)]
    assert found[0].note == GIVEN_CENTROIDS
    assert found[1].note == NOTHING_WRITTEN.format(split="test")
    assert held_out_lines(found) == [
        "centered_instance (val): mOKS 0.710 · OKS mAP 0.500 · OKS mAR 0.625 · mPCK 0.617 · "
        "PCK@5px 0.583 · PCK@10px 1.000 · distance p50 2.69 px · distance p95 8.43 px",
        f"note on centered_instance (val): {GIVEN_CENTROIDS}",
        "centered_instance (test): sleap-nn wrote no metrics for test (it skips evaluation when "
        "the model predicts nothing)",
    ]


def test_a_failed_centroid_evaluation_is_named_from_the_job_log(tmp_path: Path) -> None:
    run = _run(tmp_path / "models" / "c")
    other = tmp_path / "models" / "c2"
    log = tmp_path / "job.log"
    log.write_text(
        "=== colabot step: train centroid (model 1 of 2) ===\n"
        f"2026-12-06 06:33:44 | Run path for index 0: {run.as_posix()}\n"
        "2026-12-06 06:33:44 | Skipping centroid eval on `val.0`: Empty Frame Pairs\n"
        "=== colabot step: train centroid (model 2 of 2) ===\n"
        f"2026-12-06 06:33:50 | Run path for index 0: {other.as_posix()}\n"
        "2026-12-06 06:33:50 | Skipping centroid eval on `val.0`: another model's error\n"
    )
    (note,) = [m.note for m in held_out("centroid", "centroid", run, log)]
    assert note == "not evaluated: sleap-nn's evaluation on val failed (Empty Frame Pairs)"


def test_a_model_that_found_nothing_says_so(tmp_path: Path, sleap_data: dict[str, Path]) -> None:
    import sleap_io as sio

    run = tmp_path / "run"
    run.mkdir()
    labels = sio.load_slp(str(sleap_data["pkg"]))
    for frame in labels.labeled_frames:
        frame.instances = []
    labels.save(str(run / "labels_pr.val.0.slp"))
    (found,) = held_out("single_instance", "single_instance", run)
    assert found.note == FOUND_NOTHING.format(split="val", threshold=0.2)
    assert found.line() == (
        "single_instance (val): not evaluated: the model found no animal in the val frames at "
        "sleap-nn's peak threshold 0.2 (train longer, or label more frames)"
    )


def test_one_labelled_frame_is_its_own_validation(
    tmp_path: Path, sleap_data: dict[str, Path]
) -> None:
    import sleap_io as sio

    run = _run(tmp_path / "run", val_0=POSE)
    labels = sio.load_slp(str(sleap_data["pkg"]))
    labels.labeled_frames = labels.labeled_frames[:1]
    for split in ("train", "val"):
        labels.save(str(run / f"labels_gt.{split}.0.slp"))
    (found,) = held_out("single_instance", "single_instance", run)
    assert found.note == (
        "validation = the training frame (only 1 labelled frame): these scores are not held out"
    )
    two = sio.load_slp(str(sleap_data["pkg"]))
    two.labeled_frames = two.labeled_frames[1:2]
    two.save(str(run / "labels_gt.val.0.slp"))
    (found,) = held_out("single_instance", "single_instance", run)
    assert found.note == ""


def test_the_card_draws_curves_and_tables(tmp_path: Path) -> None:
    rows = [EpochRow(0, None, 0.5), EpochRow(1, 0.4, 0.3)]
    pose = ModelScores("centered_instance", "val", scores_of(POSE, ""), note=GIVEN_CENTROIDS)
    missing = ModelScores("centroid", "val", note=NOTHING_WRITTEN.format(split="val"))
    header, table = table_rows([pose, ModelScores("x", "test", scores_of(POSE, ""))])
    assert header == ["", "val", "test"]
    assert table[0] == ["mOKS", "0.710", "0.710"] and table[-1][0] == "distance p95"
    assert table_rows([missing]) == ([""], [])
    card = draw_card(
        [CardModel("model 1: centroid", rows, [missing]), CardModel("model 2", [], [pose])],
        tmp_path / "card.png",
    )
    assert card is not None and card.read_bytes().startswith(b"\x89PNG")
    assert draw_card([], tmp_path / "none.png") is None
    assert draw_comparison([("#1", [("a", [])]), ("#2", [])], tmp_path / "no.png") is None


# --------------------------------------------------------------------------------- fingerprint


def _fingerprint_of(labels: Path, work: Path) -> str:
    source = open_training_input(labels, work)
    usable, _reports = check_labels(source.labels, work, for_training=True)
    return data_fingerprint(source, usable)


def test_the_same_data_in_two_folders_has_one_fingerprint(
    tmp_path: Path, sleap_data: dict[str, Path]
) -> None:
    import sleap_io as sio

    folder = sleap_data["slp_mp4"].parent
    first, second = tmp_path / "first", tmp_path / "second"
    for copy in (first, second):
        shutil.copytree(folder, copy)
    one = _fingerprint_of(first / "labels.slp", tmp_path / "w1")
    assert one == _fingerprint_of(second / "labels.slp", tmp_path / "w2")
    # The labels file and the video beside it, both by content.
    assert one == fingerprint([first / "labels.slp", first / "video.mp4"])

    labels = sio.load_slp(str(second / "labels.slp"), open_videos=False)
    labels.labeled_frames[0].instances[0].points["xy"][0] += 3.0
    labels.save(str(second / "labels.slp"))
    assert _fingerprint_of(second / "labels.slp", tmp_path / "w3") != one

    shutil.copytree(folder, tmp_path / "third")
    (tmp_path / "third" / "video.mp4").write_bytes(sleap_data["video"].read_bytes())
    assert _fingerprint_of(tmp_path / "third" / "labels.slp", tmp_path / "w4") != one


def test_a_package_s_fingerprint_is_its_labels_file(
    tmp_path: Path, sleap_data: dict[str, Path]
) -> None:
    work = tmp_path / "work"
    found = _fingerprint_of(sleap_data["package"], work)
    assert found == fingerprint([work / "package" / "project.pkg.slp"])
    assert found != _fingerprint_of(sleap_data["pkg"], tmp_path / "other")
