"""The job model's transition table and records."""

from __future__ import annotations

import pytest

from workers.errors import InvalidTransitionError
from workers.jobs import (
    TRANSITIONS,
    Action,
    Job,
    JobSpec,
    JobState,
    Link,
    Progress,
    can_transition,
    check_transition,
)

ALLOWED = {
    (JobState.QUEUED, JobState.RUNNING),
    (JobState.QUEUED, JobState.CANCELLED),
    (JobState.RUNNING, JobState.SUCCEEDED),
    (JobState.RUNNING, JobState.FAILED),
    (JobState.RUNNING, JobState.CANCELLED),
    (JobState.RUNNING, JobState.INTERRUPTED),
    (JobState.INTERRUPTED, JobState.QUEUED),
    (JobState.INTERRUPTED, JobState.CANCELLED),
    (JobState.FAILED, JobState.QUEUED),
}


@pytest.mark.parametrize("source", list(JobState))
@pytest.mark.parametrize("target", list(JobState))
def test_transition_table_is_exactly_the_documented_one(source: JobState, target: JobState) -> None:
    assert can_transition(source, target) == ((source, target) in ALLOWED)


@pytest.mark.parametrize("state", list(JobState))
def test_what_a_job_may_do_follows_the_table(state: JobState) -> None:
    job = Job(1, JobSpec("selftest", Action.TRAIN), state, created_at=0.0)
    assert job.can_cancel == ((state, JobState.CANCELLED) in ALLOWED)
    assert job.can_resume == ((state, JobState.QUEUED) in ALLOWED)
    assert job.active == (state in (JobState.QUEUED, JobState.RUNNING))
    assert job.finished == (not job.active and state is not JobState.INTERRUPTED)


def test_every_state_has_a_table_row() -> None:
    assert set(TRANSITIONS) == set(JobState)


def test_check_transition_names_both_states() -> None:
    with pytest.raises(InvalidTransitionError, match="from succeeded to running"):
        check_transition(JobState.SUCCEEDED, JobState.RUNNING)


def test_spec_round_trips_through_json_form() -> None:
    spec = JobSpec("selftest", Action.INFER, {"model": "job:3"}, {"steps": 4, "fail": True})
    assert JobSpec.from_dict(spec.to_dict()) == spec


def test_progress_ignores_unknown_keys_and_missing_data() -> None:
    assert Progress.from_dict(None) == Progress()
    assert Progress.from_dict({"fraction": 0.5, "future_field": 1}).fraction == 0.5


def test_link_round_trip() -> None:
    link = Link("model", "https://example.org/m.zip", 1234)
    assert Link.from_dict(link.to_dict()) == link
