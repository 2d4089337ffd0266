"""The SLEAP kind's pure parts: parsers of sleap-nn output, jobs.yaml, failures, validation."""

from __future__ import annotations

from typing import Any

import pytest

from workers.errors import SpecError
from workers.jobs import Action, JobSpec
from workers.kinds.sleap import PredictTracker, SleapKind, TrainingTracker
from workers.kinds.sleap_parse import (
    BarUpdate,
    EpochRow,
    PackageError,
    PredictError,
    PredictUpdate,
    check_frames,
    check_override_key,
    explain_lines,
    loss_curves,
    merge_history,
    merge_log_text,
    parse_bar_line,
    parse_gui_line,
    parse_jobs,
    parse_log,
    parse_log_header,
    parse_log_row,
)
from workers.kinds.sleap_plan import ModelPlan, Plan, PredictPlan
from workers.sources import local_file_name

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


JOBS: dict[str, list[dict[str, Any]]] = {
    "training": [
        {"cfg": "centroid.yaml", "run_path": "models/t.centroid.n=6", "train_labels": "p.pkg.slp"},
        {"cfg": "ci.yaml", "run_path": "models/t.ci.n=6", "train_labels": "p.pkg.slp"},
    ],
    "inference": [
        {
            "data_path": "p.pkg.slp",
            "models": ["models/t.centroid.n=6", "models/t.ci.n=6"],
            "output_path": "p.pkg.slp.predictions.slp",
            "type": "labels",
            "only_suggested_frames": True,
            "tracking": {"tracking.tracker": "none"},
        }
    ],
}


def test_jobs_yaml_is_read_in_order() -> None:
    jobs = parse_jobs(JOBS)
    assert [e.cfg for e in jobs.training] == ["centroid.yaml", "ci.yaml"]
    assert jobs.training[0].run_name == "t.centroid.n=6"
    (inference,) = jobs.inference
    assert inference.only_suggested_frames and not inference.tracking
    assert inference.models == ("models/t.centroid.n=6", "models/t.ci.n=6")
    tracked = {**JOBS["inference"][0], "tracking": {"tracking.tracker": "flow"}}
    assert parse_jobs({**JOBS, "inference": [tracked]}).inference[0].tracking


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "not a mapping"),
        ({"training": []}, "no training jobs"),
        ({"training": [{"cfg": "a.yaml", "train_labels": "p.slp"}]}, "has no run_path"),
        (
            {"training": [{"cfg": "../a.yaml", "run_path": "m/a", "train_labels": "p.slp"}]},
            "not a path inside the package",
        ),
        (
            {"training": [{"cfg": "/etc/a.yaml", "run_path": "m/a", "train_labels": "p.slp"}]},
            "not a path inside the package",
        ),
        ({**JOBS, "inference": [{"data_path": "p.slp", "models": []}]}, "lists no models"),
    ],
)
def test_bad_jobs_yaml_is_refused(data: object, message: str) -> None:
    with pytest.raises(PackageError, match=message):
        parse_jobs(data)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            [
                "RuntimeError: Attempting to deserialize object on a CUDA device but "
                "torch.cuda.is_available() is False. If you are running on a CPU-only machine,"
            ],
            "no usable CUDA GPU",
        ),
        (
            ["torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"],
            "the GPU ran out of memory",
        ),
        (
            [
                "FileNotFoundError: Video does not exist or cannot be opened for reading: "
                "/content/drive/MyDrive/proj/video.mp4 (dataset: )"
            ],
            "a video cannot be found: /content/drive/MyDrive/proj/video.mp4.",
        ),
        (
            ["OSError: Unable to synchronously open file (file signature not found)"],
            "not a SLEAP .slp file",
        ),
        (
            [
                "FileNotFoundError: [Errno 2] Unable to synchronously open file (unable to open "
                "file: name = '/tmp/x/nonexistent.slp', errno = 2, error message = 'No such'"
            ],
            "a file is missing: /tmp/x/nonexistent.slp",
        ),
        (
            [
                "hydra.errors.ConfigCompositionException: Could not override "
                "'trainer_config.foo_bar'.",
                "To append to your config use +trainer_config.foo_bar=3",
            ],
            "unknown config key trainer_config.foo_bar",
        ),
        (
            ["omegaconf.errors.ConfigKeyError: Key 'foo_bar' not in 'TrainerConfig'"],
            "unknown config key foo_bar",
        ),
        (
            [
                "omegaconf.errors.ValidationError: Value 'abc' of type 'str' could not be "
                "converted to Integer"
            ],
            "wrong type: Value 'abc'",
        ),
        (
            ["yaml.parser.ParserError: while parsing a flow sequence"],
            "not valid YAML",
        ),
        (
            [
                '{"error": true, "type": "FileNotFoundError", "message": "Model path does not '
                "exist: /tmp/nomodel. Pass a model directory, or a path to its 'best.ckpt'\"}"
            ],
            "the model folder /tmp/nomodel does not exist",
        ),
        (["sleap_tools: error: project.zip: entry '../x' points outside"], "project.zip: entry"),
        (["Traceback (most recent call last):", "KeyError: 'thing'"], "KeyError: 'thing'"),
        (["Traceback (most recent call last):", "ValueError: odd thing"], "ValueError: odd thing"),
        (["all fine"], None),
    ],
)
def test_failures_are_explained(lines: list[str], expected: str | None) -> None:
    found = explain_lines(lines)
    if expected is None:
        assert found is None
    else:
        assert found is not None and expected in found


def test_a_tool_refusal_wins_over_other_lines() -> None:
    lines = ["ValueError: noise", "sleap_tools: error: the labels have no instances"]
    assert explain_lines(lines) == "the labels have no instances"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("trainer_config.optimizer.lr", None),
        ("+trainer_config.train_steps_per_epoch", None),
        ("model_config.head_configs.centroid.confmaps.anchor_part", None),
        ("foo.bar", "starts with 'foo'"),
        ("trainer_config.", "not a dotted config key"),
        ("trainer_config.ckpt_dir", "always saved in the job's folder"),
        ("trainer_config.zmq.publish_port", "cannot be changed"),
        ("data_config.train_labels_path", "come from the job's input"),
    ],
)
def test_override_keys(key: str, problem: str | None) -> None:
    found = check_override_key(key)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_frames_and_source_names() -> None:
    assert check_frames("0-99") is None and check_frames("1,5,9") is None
    assert check_frames("1-3,5") is not None and check_frames("9-2") is not None
    assert local_file_name("upload:proj.slp") == "proj.slp"
    assert local_file_name("data/proj.pkg.slp") == "proj.pkg.slp"
    assert local_file_name("https://x/y.slp") is None and local_file_name("job:3") is None


def test_the_plan_round_trips_through_json() -> None:
    plan = Plan(
        action="train",
        summary="s",
        models=[ModelPlan(1, "centroid", "r", "c", "d", "f", 3)],
        predictions=[PredictPlan("v.mp4", ["f"], "o.slp", peak_threshold=0.1)],
    )
    again = Plan.from_dict(plan.to_dict())
    assert again == plan


KIND = SleapKind()


def _train(inputs: dict[str, str], **params: str) -> JobSpec:
    return KIND.validate(JobSpec("sleap", Action.TRAIN, inputs, dict(params)))


def test_example_needs_no_input_and_overrides_pass_as_strings() -> None:
    spec = _train({"input": "example"})
    assert spec.inputs == {} and spec.params["example"] is True
    spec = _train({"input": "p.slp"}, **{"trainer_config.optimizer.lr": "0.001", "epochs": "3"})
    assert spec.params["trainer_config.optimizer.lr"] == "0.001" and spec.params["epochs"] == 3


@pytest.mark.parametrize(
    ("inputs", "params", "field", "message"),
    [
        ({"input": "movie.mp4"}, {}, "inputs.input", "is not SLEAP labels"),
        ({"input": "p.slp", "config": "c.txt"}, {}, "inputs.config", "not a .yaml or .json"),
        ({"input": "p.slp"}, {"foo.bar": "1"}, "params.foo.bar", "starts with 'foo'"),
        (
            {"input": "p.slp"},
            {"trainer_config.ckpt_dir": "/x"},
            "params.trainer_config.ckpt_dir",
            "always saved",
        ),
        ({"input": "p.slp"}, {"preset": "big"}, "params.preset", "must be one of"),
        ({"input": "p.slp"}, {"infer": "yes"}, "params.infer", "inference jobs"),
        ({"input": "p.slp"}, {"run_name": "../up"}, "params.run_name", "letters, digits"),
        ({"input": "example", "config": "c.yaml"}, {}, "inputs.input", "brings its own data"),
        ({}, {}, "inputs.input", "missing"),
    ],
)
def test_bad_training_requests_are_refused_at_submit(
    inputs: dict[str, str], params: dict[str, str], field: str, message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        _train(inputs, **params)
    assert caught.value.field == field and message in caught.value.message


def test_bad_inference_requests_are_refused_at_submit() -> None:
    spec = JobSpec("sleap", Action.INFER, {"model": "3", "input": "v.mp4"}, {"frames": "1-3,5"})
    with pytest.raises(SpecError, match=r"params\.frames"):
        KIND.validate(spec)
    overrides = JobSpec("sleap", Action.INFER, {"model": "3", "input": "v.mp4"}, {"a.b": "1"})
    with pytest.raises(SpecError, match="unknown parameter"):
        KIND.validate(overrides)
