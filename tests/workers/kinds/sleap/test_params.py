"""SLEAP requests checked at submit: file types, override keys, frames, names."""

from __future__ import annotations

import pytest

from workers.errors import SpecError
from workers.inputs.sources import local_file_name
from workers.jobs import Action, JobSpec
from workers.kinds.sleap.kind import SleapKind
from workers.kinds.sleap.params import check_frames, check_override_key


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
    assert local_file_name("upload:proj.slp") is None  # uploads are named by their file name
    assert local_file_name("data/proj.pkg.slp") == "proj.pkg.slp"
    assert local_file_name("https://x/y.slp") is None and local_file_name("job:3") is None


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
