"""The SQLite store's job tables: jobs, transitions, their metadata, and redaction on the way in."""

from __future__ import annotations

import sqlite3

import pytest

from workers.errors import InvalidTransitionError, UnknownJobError
from workers.events import EventType, Failed, FileReady, Notice, Started, Succeeded
from workers.jobs import (
    Action,
    CheckpointNote,
    JobSpec,
    JobState,
    KeptOutput,
    Link,
    Progress,
    StepRecord,
)
from workers.quality import ModelScores, Quality, Score
from workers.safety.redaction import register_secret
from workers.sharing.owners import Owner
from workers.store.connection import DB_NAME
from workers.store.database import Store
from workers.store.outbox import StatusRecord

SPEC = JobSpec("selftest", Action.TRAIN, {}, {"steps": 2})


def test_store_uses_wal_mode(store: Store) -> None:
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert store.path.name == DB_NAME


def test_new_job_is_queued_with_a_queued_event(store: Store) -> None:
    job = store.add_job(SPEC, {"chat_id": 5})
    assert job.state is JobState.QUEUED
    assert job.origin == {"chat_id": 5}
    assert [e.type for e in store.pending_events()] == [EventType.QUEUED]


def test_transition_records_times_error_and_event_atomically(store: Store) -> None:
    job = store.add_job(SPEC)
    running = store.transition(job.id, JobState.RUNNING, now=100.0, event=Started())
    assert running.started_at == 100.0
    failed = store.transition(
        job.id,
        JobState.FAILED,
        now=130.0,
        error="boom",
        event=Failed("boom"),
    )
    assert failed.finished_at == 130.0 and failed.error == "boom"
    assert failed.elapsed() == 30.0
    assert [e.type for e in store.events_for(job.id)] == [
        EventType.QUEUED,
        EventType.STARTED,
        EventType.FAILED,
    ]


def test_refused_transition_changes_nothing(store: Store) -> None:
    job = store.add_job(SPEC)
    with pytest.raises(InvalidTransitionError):
        store.transition(job.id, JobState.SUCCEEDED, event=Succeeded())
    assert store.get_job(job.id).state is JobState.QUEUED
    assert [e.type for e in store.events_for(job.id)] == [EventType.QUEUED]


def test_resume_increments_attempt_and_clears_error(store: Store) -> None:
    job = store.add_job(SPEC)
    store.transition(job.id, JobState.RUNNING)
    store.transition(job.id, JobState.FAILED, error="x")
    again = store.transition(job.id, JobState.QUEUED)
    assert again.attempt == 2 and again.error is None and again.finished_at is None


def test_unknown_job(store: Store) -> None:
    with pytest.raises(UnknownJobError, match="no job 42"):
        store.get_job(42)
    assert store.find_job(42) is None
    with pytest.raises(UnknownJobError):
        store.set_progress(42, Progress())


def test_interrupt_running_marks_only_running_jobs(store: Store) -> None:
    queued = store.add_job(SPEC)
    running = store.add_job(SPEC)
    store.transition(running.id, JobState.RUNNING)
    interrupted = store.interrupt_running()
    assert [j.id for j in interrupted] == [running.id]
    assert store.get_job(running.id).state is JobState.INTERRUPTED
    assert store.get_job(queued.id).state is JobState.QUEUED
    assert store.events_for(running.id)[-1].type is EventType.INTERRUPTED


def test_progress_links_checkpoint_and_summary_persist(store: Store) -> None:
    job = store.add_job(SPEC)
    store.set_progress(job.id, Progress(fraction=0.5, message="half"))
    store.set_links(job.id, [Link("model", "file:///m.zip", 3)])
    store.set_checkpoint(job.id, "job-1/checkpoints/step-3.json")
    store.set_summary(job.id, "done")
    again = store.get_job(job.id)
    assert again.progress.message == "half"
    assert again.links == (Link("model", "file:///m.zip", 3),)
    assert again.checkpoint == "job-1/checkpoints/step-3.json"
    assert again.summary == "done"


def test_ids_continue_above_a_reserved_id(store: Store) -> None:
    store.reserve_ids_above(41)
    assert store.add_job(SPEC).id == 42
    store.reserve_ids_above(10)
    assert store.add_job(SPEC).id == 43


def test_job_with_a_known_id_and_state(store: Store) -> None:
    job = store.add_job(SPEC, job_id=7, state=JobState.INTERRUPTED)
    assert job.id == 7 and job.state is JobState.INTERRUPTED
    assert store.pending_events() == []


def test_job_metadata_round_trips(store: Store) -> None:
    job = store.add_job(SPEC)
    store.set_outputs(job.id, [KeptOutput("model", "/m"), KeptOutput("metrics", "/r.json")])
    assert store.outputs(job.id) == [KeptOutput("model", "/m"), KeptOutput("metrics", "/r.json")]
    store.set_outputs(job.id, [KeptOutput("model", "/m2")])
    assert store.outputs(job.id) == [KeptOutput("model", "/m2")]
    store.keep_input(job.id, "a.zip", "drive:1")
    assert store.kept_inputs(job.id) == {"a.zip": "drive:1"}
    note = CheckpointNote("drive:2", 10.0, "epoch 3 of 9")
    store.save_checkpoint_note(job.id, note, [1.0, 2.0])
    assert store.checkpoint_note(job.id) == note
    assert store.checkpoint_signature(job.id) == [1.0, 2.0]
    step = StepRecord(job.id, 0, "train", "local", {"pid": 5, "mark": "m"}, 3.0)
    store.start_step(step)
    assert store.open_steps(job.id) == [step]
    store.end_step(job.id, 0)
    assert store.open_steps(job.id) == []


def test_list_jobs_newest_first_and_by_state(store: Store) -> None:
    ids = [store.add_job(SPEC).id for _ in range(3)]
    store.transition(ids[1], JobState.RUNNING)
    assert [j.id for j in store.list_jobs()] == ids[::-1]
    assert [j.id for j in store.list_jobs(states=[JobState.RUNNING])] == [ids[1]]
    queued = store.list_jobs(states=[JobState.QUEUED])
    assert [j.id for j in queued] == [ids[2], ids[0]]


def test_jobs_keep_their_owner_and_lists_filter_by_it(store: Store) -> None:
    alice, bob = Owner(11, "@alice"), Owner(22, "Bob")
    mine = store.add_job(SPEC, owner=alice)
    theirs = store.add_job(SPEC, owner=bob)
    nobody = store.add_job(SPEC)
    assert store.get_job(mine.id).owner == alice and store.get_job(nobody.id).owner is None
    assert [j.id for j in store.list_jobs(owner_id=alice.user_id)] == [nobody.id, mine.id]
    assert [j.id for j in store.list_jobs(owner_id=bob.user_id)] == [nobody.id, theirs.id]


def test_step_spans_carry_the_owner_gpus_and_end_with_their_job(store: Store) -> None:
    alice = Owner(11, "@alice")
    job = store.add_job(SPEC, owner=alice)
    store.transition(job.id, JobState.RUNNING, now=100.0)
    store.start_step(StepRecord(job.id, 0, "train", "ray", {}, 100.0, gpus=2.0))
    store.start_step(StepRecord(job.id, 1, "package", "ray", {}, 200.0))
    store.end_step(job.id, 0, now=200.0)
    spans = sorted(store.step_spans(), key=lambda s: s.started_at)
    assert [(s.owner_id, s.gpus, s.ended_at) for s in spans] == [(11, 2.0, 200.0), (11, 0.0, None)]
    store.transition(job.id, JobState.SUCCEEDED, now=250.0)
    assert sorted(s.ended_at or 0 for s in store.step_spans()) == [200.0, 250.0]
    assert store.step_spans(since=300.0) == []


STORED_SECRET = "a-registered-secret-0123456789"


def test_text_entering_the_store_is_redacted_but_specs_and_locations_are_kept(
    store: Store,
) -> None:
    register_secret(STORED_SECRET)
    said = f"boom: {STORED_SECRET} and Authorization: Bearer abcdef123456"
    spec = JobSpec("selftest", Action.TRAIN, {"input": f"/data/{STORED_SECRET}"}, {})
    job = store.add_job(spec)
    store.transition(job.id, JobState.RUNNING)
    store.set_progress(job.id, Progress(message=said))
    store.add_event(job.id, Notice(text=said, html=f"<b>{said}</b>"))
    store.add_event(job.id, FileReady(path=f"/jobs/1/{STORED_SECRET}.txt", caption=said))
    store.save_status_message(job.id, StatusRecord(5, 6, said))
    store.forget_chat(5, said)
    failed = store.transition(
        job.id, JobState.FAILED, error=said, event=Failed(reason=said, tail=[said], step=said)
    )
    masked = "boom: **** and Authorization: Bearer ****"
    assert failed.error == masked and failed.progress.message == masked
    payloads = [e.payload for e in store.events_for(job.id)]
    assert Failed(reason=masked, tail=[masked], step=masked) in payloads
    assert Notice(text=masked, html=f"<b>{masked}</b>") in payloads
    assert FileReady(path=f"/jobs/1/{STORED_SECRET}.txt", caption=masked) in payloads
    status = store.status_message(job.id)
    assert status is not None and status.text == masked
    # What the user typed runs again as typed; where a file lies is where it lies.
    assert store.get_job(job.id).spec == spec
    with sqlite3.connect(store.path) as db:
        texts = [
            str(value)
            for table in ("jobs", "events", "status_messages", "chats")
            for row in db.execute(f"SELECT * FROM {table}")  # noqa: S608
            for value in row
        ]
    holding = [text for text in texts if STORED_SECRET in text]
    assert len(holding) == 2 and "selftest" in holding[0] and "jobs/1/" in holding[1]
    assert not [text for text in texts if "abcdef123456" in text]


def scored(data: str, value: float, **params: str) -> Quality:
    """A quality record of one model with one score."""
    return Quality(data, (ModelScores("m", "val", (Score("F1", value),)),), params)


def finished_training(
    store: Store,
    kind: str = "selftest",
    *,
    action: Action = Action.TRAIN,
    state: JobState = JobState.SUCCEEDED,
) -> int:
    """A job that ran and ended in ``state``; its id."""
    job = store.add_job(JobSpec(kind, action, {}, {}))
    store.transition(job.id, JobState.RUNNING)
    store.transition(job.id, state)
    return job.id


def test_quality_is_kept_per_job_and_replaced_by_a_later_attempt(store: Store) -> None:
    job = finished_training(store)
    assert store.quality(job) is None
    store.set_quality(job, "selftest", scored("d1", 0.5, epochs="3"))
    assert store.quality(job) == scored("d1", 0.5, epochs="3")
    store.set_quality(job, "selftest", scored("d1", 0.7))
    assert store.quality(job) == scored("d1", 0.7)


def test_the_earlier_run_is_the_newest_succeeded_training_of_the_kind_on_the_same_data(
    store: Store,
) -> None:
    oldest = finished_training(store)
    store.set_quality(oldest, "selftest", scored("d1", 0.1))
    newer = finished_training(store)
    store.set_quality(newer, "selftest", scored("d1", 0.2))
    other_data = finished_training(store)
    store.set_quality(other_data, "selftest", scored("d2", 0.3))
    other_kind = finished_training(store, "spacy")
    store.set_quality(other_kind, "spacy", scored("d1", 0.4))
    failed = finished_training(store, state=JobState.FAILED)
    store.set_quality(failed, "selftest", scored("d1", 0.5))
    inference = finished_training(store, action=Action.INFER)
    store.set_quality(inference, "selftest", scored("d1", 0.6))
    now = finished_training(store)
    store.set_quality(now, "selftest", scored("d1", 0.9))
    later = finished_training(store)
    store.set_quality(later, "selftest", scored("d1", 0.95))

    assert store.earlier_on_same_data(now, "selftest", "d1") == (newer, scored("d1", 0.2))
    assert store.earlier_on_same_data(newer, "selftest", "d1") == (oldest, scored("d1", 0.1))
    assert store.earlier_on_same_data(oldest, "selftest", "d1") is None
    assert store.earlier_on_same_data(now, "selftest", "d3") is None
    assert store.earlier_on_same_data(now, "spacy", "d1") == (other_kind, scored("d1", 0.4))
    # No fingerprint (the kind could not tell what it trained on): never compared.
    blank = finished_training(store)
    store.set_quality(blank, "selftest", scored("", 0.3))
    assert store.earlier_on_same_data(later + 10, "selftest", "") is None


def test_an_unreadable_quality_record_reads_as_empty(store: Store) -> None:
    job = finished_training(store)
    with sqlite3.connect(store.path) as db:
        db.execute(
            "INSERT INTO job_quality (job_id, kind, data, quality) VALUES (?, 'selftest', 'd', ?)",
            (job, "{not json"),
        )
    assert store.quality(job) == Quality()
