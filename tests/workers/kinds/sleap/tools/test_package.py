"""A training package's jobs.yaml, read with every path checked."""

from __future__ import annotations

from typing import Any

import pytest

from workers.kinds.sleap.tools.package import PackageError, parse_jobs

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
