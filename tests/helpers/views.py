"""What the view tests share: a fixed clock, a job as a view sees it, and held-out scores."""

from __future__ import annotations

import dataclasses
from typing import Any

from workers.jobs import Action, Job, JobSpec, JobState
from workers.quality import ModelScores, Quality, Score

NOW = 1_000_000.0


def job(state: JobState, **extra: Any) -> Job:
    base = Job(
        id=7,
        spec=JobSpec("selftest", Action.TRAIN, {"input": "a<b>.txt"}, {"steps": 3}),
        state=state,
        created_at=NOW - 100,
        started_at=NOW - 90 if state is not JobState.QUEUED else None,
    )
    return dataclasses.replace(base, **extra)


SCORES = Quality(
    "d1",
    (
        ModelScores(
            "single_instance", "val", (Score("mOKS", 0.712), Score("dist", 2.7, False, "px"))
        ),
        ModelScores("centroid", "val", note="not evaluated: too few frames"),
    ),
    {"epochs": 10},
)
