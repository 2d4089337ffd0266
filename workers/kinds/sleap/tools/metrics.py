"""How good a trained SLEAP model is on held-out frames, from sleap-nn's own evaluation.

After training, ``sleap-nn train`` scores the model on each split and writes
``metrics.<split>.<n>.json`` into the run folder (the JSON sibling of a pickled ``.npz``: only
the JSON is read, since unpickling a file a job wrote runs code). Pose models (single
instance, centered instance, bottom-up) have mOKS, OKS mAP/mAR, PCK and distances; centroid
models have detection precision, recall and F1 and centroid distances. Every key may be
missing or ``null`` (sleap-nn writes NaN as null, and the int 0 for mAP when nothing
matched). When sleap-nn scored nothing (the model found no animal, or the evaluation failed)
the split gets one line saying so. Runs in the job's tools (reads sleap-io files for the
caveats); the ``train`` split is never shown: it is not held out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workers.logfile import tail_lines
from workers.quality import ModelScores, Score

# (shown name, JSON section, key, higher is better, unit), headline first.
POSE_SCORES: tuple[tuple[str, str, str, bool, str], ...] = (
    ("mOKS", "mOKS", "mOKS", True, ""),
    ("OKS mAP", "voc_metrics", "oks_voc.mAP", True, ""),
    ("OKS mAR", "voc_metrics", "oks_voc.mAR", True, ""),
    ("mPCK", "pck_metrics", "mPCK", True, ""),
    ("PCK@5px", "pck_metrics", "PCK@5", True, ""),
    ("PCK@10px", "pck_metrics", "PCK@10", True, ""),
    ("distance p50", "distance_metrics", "p50", False, "px"),
    ("distance p95", "distance_metrics", "p95", False, "px"),
)
CENTROID_SCORES: tuple[tuple[str, str, str, bool, str], ...] = (
    ("F1", "detection_metrics", "f1", True, ""),
    ("precision", "detection_metrics", "precision", True, ""),
    ("recall", "detection_metrics", "recall", True, ""),
    ("distance p50", "distance_metrics", "p50", False, "px"),
    ("distance p90", "distance_metrics", "p90", False, "px"),
)
HELD_OUT = ("val", "test")
PEAK_THRESHOLD = 0.2
"""The peak threshold sleap-nn's evaluation predicts with (fixed in ``sleap_nn/train.py``)."""
MAX_METRICS_BYTES = 64 * 1024 * 1024
LOG_BYTES = 8 * 1024 * 1024

NOTHING_WRITTEN = (
    "sleap-nn wrote no metrics for {split} (it skips evaluation when the model predicts nothing)"
)
FOUND_NOTHING = (
    "not evaluated: the model found no animal in the {split} frames at sleap-nn's peak "
    "threshold {threshold} (train longer, or label more frames)"
)
GIVEN_CENTROIDS = (
    "scored on the labelled centroids: pose accuracy given perfect detection; the centroid "
    "model's line scores detection"
)
SAME_FRAME = (
    "validation = the training frame (only 1 labelled frame): these scores are not held out"
)


def split_name(split: str) -> str:
    """``val`` for ``val.0`` (the usual one), ``val.1`` for a second labels file's."""
    kind, _, index = split.partition(".")
    return kind if index in ("", "0") else split


def read_metrics(path: Path) -> tuple[dict[str, Any] | None, str]:
    """A metrics JSON file's content, or (None, one line saying why it cannot be used)."""
    try:
        if path.stat().st_size > MAX_METRICS_BYTES:
            return None, f"{path.name} is too large to read ({path.stat().st_size} bytes)"
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return None, f"{path.name} cannot be read ({why})"
    try:
        data = json.loads(text)
    except ValueError as exc:
        return None, f"{path.name} is not valid JSON ({str(exc).splitlines()[0]})"
    if not isinstance(data, dict):
        return None, f"{path.name} holds no metrics (a JSON {type(data).__name__}, not an object)"
    return data, ""


def _number(value: object) -> float | None:
    """A score's value: a finite int or float; anything else (null, text, true) is None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def is_centroid(data: Mapping[str, Any], head: str) -> bool:
    """Whether the metrics are a centroid model's (detection, not pose)."""
    return "detection_metrics" in data or head == "centroid"


def scores_of(data: Mapping[str, Any], head: str) -> tuple[Score, ...]:
    """The headline scores of one split's metrics, in order; a missing key is a None value."""
    table = CENTROID_SCORES if is_centroid(data, head) else POSE_SCORES
    scores = []
    for name, section, key, higher, unit in table:
        part = data.get(section)
        value = _number(part.get(key)) if isinstance(part, Mapping) else None
        scores.append(Score(name, value, higher, unit))
    return tuple(scores)


def expected_splits(run_dir: Path) -> list[str]:
    """The held-out splits sleap-nn evaluates (``val.0``, ``test.<n>`` when the config names
    test files), and any other held-out metrics files found in the run folder, in order."""
    splits = ["val.0", *(f"test.{i}" for i in range(_test_files(run_dir)))]
    for path in sorted(run_dir.glob("metrics.*.json")):
        split = path.name[len("metrics.") : -len(".json")]
        if split.split(".")[0] in HELD_OUT and split not in splits:
            splits.append(split)
    order = {kind: i for i, kind in enumerate(HELD_OUT)}
    return sorted(splits, key=lambda s: (order[s.split(".")[0]], _index(s)))


def _index(split: str) -> int:
    tail = split.partition(".")[2]
    return int(tail) if tail.isdigit() else 0


def _test_files(run_dir: Path) -> int:
    """How many test files the run's config names (``data_config.test_file_path``)."""
    import yaml

    config = run_dir / "training_config.yaml"
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return 0
    section = data.get("data_config") if isinstance(data, dict) else None
    tests = section.get("test_file_path") if isinstance(section, dict) else None
    if isinstance(tests, str):
        return 1
    return len(tests) if isinstance(tests, list) else 0


def held_out(
    model: str, head: str, run_dir: Path, job_log: Path | None = None
) -> list[ModelScores]:
    """A model's scores on each held-out split, or one line per split saying why there are
    none. ``model`` names it in the chat; ``job_log`` is read for why sleap-nn skipped one."""
    found = []
    for split in expected_splits(run_dir):
        name = split_name(split)
        path = run_dir / f"metrics.{split}.json"
        if not path.is_file():
            note = missing_note(split, run_dir, job_log)
            found.append(ModelScores(model, name, note=note))
            continue
        data, why = read_metrics(path)
        if data is None:
            found.append(ModelScores(model, name, note=why))
            continue
        notes = []
        if head == "centered_instance":
            notes.append(GIVEN_CENTROIDS)
        if split.startswith("val.") and same_frames(run_dir, _index(split)):
            notes.append(SAME_FRAME)
        found.append(ModelScores(model, name, scores_of(data, head), note="; ".join(notes)))
    return found


def missing_note(split: str, run_dir: Path, job_log: Path | None) -> str:
    """Why sleap-nn left no metrics for ``split``: its evaluation failed (from the job log),
    the model found no animal (from its predictions on the split), or in general terms."""
    name = split_name(split)
    failure = evaluation_failure(job_log, run_dir, split) if job_log is not None else ""
    if failure:
        return f"not evaluated: sleap-nn's evaluation on {name} failed ({failure})"
    predicted = predicted_instances(run_dir / f"labels_pr.{split}.slp")
    if predicted == 0:
        return FOUND_NOTHING.format(split=name, threshold=PEAK_THRESHOLD)
    return NOTHING_WRITTEN.format(split=name)


_SKIPPED = re.compile(r"Skipping centroid eval on `(?P<split>[^`]+)`: (?P<why>.*)$")


def evaluation_failure(job_log: Path, run_dir: Path, split: str) -> str:
    """The error sleap-nn logged when evaluating ``split`` of this run failed ('' if none):
    the lines after its ``Run path for index 0: <run folder>``, up to the next step."""
    lines = tail_lines(job_log, 200_000, max_bytes=LOG_BYTES)
    marker = f"Run path for index 0: {run_dir.as_posix()}"
    starts = [i for i, line in enumerate(lines) if line.endswith(marker)]
    if not starts:
        return ""
    for line in lines[starts[-1] + 1 :]:
        if line.startswith("=== colabot step:"):
            break
        match = _SKIPPED.search(line)
        if match and match["split"] == split:
            return match["why"].strip()
    return ""


def predicted_instances(path: Path) -> int | None:
    """How many animals a predictions file holds (None when it cannot be read)."""
    if not path.is_file():
        return None
    try:
        import sleap_io as sio

        labels = sio.load_slp(str(path), open_videos=False)
        return sum(len(lf.instances) for lf in labels.labeled_frames)
    except Exception:
        return None


def same_frames(run_dir: Path, index: int) -> bool:
    """Whether the validation frame is the training frame (sleap-nn does that when there is
    only one labelled frame): one frame each, with the same index and points."""
    try:
        import sleap_io as sio

        val = sio.load_slp(str(run_dir / f"labels_gt.val.{index}.slp"), open_videos=False)
        if len(val.labeled_frames) != 1:
            return False  # then the training frames are other frames (and may be many)
        train = sio.load_slp(str(run_dir / f"labels_gt.train.{index}.slp"), open_videos=False)
        return [_frame_key(lf) for lf in train.labeled_frames] == [
            _frame_key(lf) for lf in val.labeled_frames
        ]
    except Exception:
        return False


def _frame_key(frame: Any) -> tuple[int, bytes]:
    import numpy as np

    points = [np.nan_to_num(inst.numpy()).round(3).tobytes() for inst in frame.user_instances]
    return int(frame.frame_idx), b"|".join(sorted(points))
