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
    Operation,
    Progress,
    can_transition,
    check_transition,
    refusal,
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


def test_uploads_are_typed_and_older_records_are_read_as_uploads() -> None:
    spec = JobSpec("sleap", Action.TRAIN, {"config": "c.yaml"}, {}, uploads={"input": "a.slp"})
    assert JobSpec.from_dict(spec.to_dict()) == spec
    assert spec.named_inputs() == {"config": "c.yaml", "input": "a.slp"}
    older = {
        "kind": "sleap",
        "action": "train",
        "inputs": {"input": "upload:a.slp", "config": "c.yaml"},
    }
    assert JobSpec.from_dict(older) == spec


@pytest.mark.parametrize("state", list(JobState))
@pytest.mark.parametrize("action", list(Action))
def test_what_a_person_may_ask_of_a_job_is_decided_in_one_place(
    state: JobState, action: Action
) -> None:
    job = Job(id=4, spec=JobSpec("selftest", action), state=state, created_at=0.0)
    training = action is Action.TRAIN
    cancel = refusal(job, Operation.CANCEL)
    assert (cancel is None) == can_transition(state, JobState.CANCELLED) == job.can_cancel
    resume = refusal(job, Operation.RESUME)
    assert (resume is None) == can_transition(state, JobState.QUEUED) == job.can_resume
    stop = refusal(job, Operation.STOP_EARLY)
    assert (stop is None) == (training and state is JobState.RUNNING) == job.can_stop_early
    plot = refusal(job, Operation.PLOT)
    assert (plot is None) == (training and state is not JobState.QUEUED)
    if cancel is not None:
        assert str(cancel) == f"job 4 is {state.value}; cannot cancel it"
    if not training:
        assert (
            str(stop) == "job 4 cannot stop early: only training stops early (/cancel stops it now)"
        )
        assert str(plot) == "no loss picture for job 4: only training jobs have a loss to draw"
    elif stop is not None:
        assert str(stop) == f"job 4 cannot stop early: it is {state.value}, not training"
