"""The outbox: events delivered only when told, and its record of what was delivered where
(per-chat deliveries, status messages, chats met, migrated and forgotten, keepalives, warnings)."""

from __future__ import annotations

from pathlib import Path

from workers.events import Notice, Queued
from workers.jobs import Action, JobSpec
from workers.store.database import Store
from workers.store.outbox import StatusRecord

SPEC = JobSpec("selftest", Action.TRAIN, {}, {"steps": 2})


def test_outbox_marks_delivered_only_when_told(store: Store) -> None:
    job = store.add_job(SPEC)
    event_id = store.add_event(job.id, Notice("hi"))
    assert [e.id for e in store.pending_events()][-1] == event_id
    store.mark_delivered(event_id)
    assert event_id not in [e.id for e in store.pending_events()]


def test_a_reader_reads_only_the_events_after_those_it_holds(store: Store) -> None:
    job = store.add_job(SPEC)
    first, second = (store.add_event(job.id, Notice(text)) for text in ("one", "two"))
    assert [e.id for e in store.pending_events(after=first)] == [second]
    store.mark_delivered(second)
    assert store.pending_events(after=first) == []
    assert first in [e.id for e in store.pending_events()]


def test_outbox_survives_reopening(tmp_path: Path) -> None:
    first = Store(tmp_path)
    job = first.add_job(SPEC)
    first.add_event(job.id, Notice("kept"))
    first.close()
    second = Store(tmp_path)
    assert [e.payload for e in second.pending_events()] == [Queued(), Notice("kept")]
    second.close()


def test_chats_are_met_forgotten_and_migrated(store: Store) -> None:
    for chat in (-1, 2, -3):
        store.meet_chat(chat, keep=2)
    assert store.met_chats() == [2, -3]
    store.forget_chat(2, "blocked")
    assert store.met_chats() == [-3] and store.forgotten_chats() == {2}
    store.meet_chat(2, keep=5)
    assert store.forgotten_chats() == set() and 2 in store.met_chats()
    job = store.add_job(SPEC, {"chat_id": -3, "thread_id": 7})
    store.save_status_message(job.id, StatusRecord(-3, 11, "running"))
    assert store.migrate_chat(-3, -1003) == 1
    assert store.chat_migrations() == {-3: -1003}
    assert store.get_job(job.id).origin == {"chat_id": -1003, "thread_id": 7}
    assert store.status_message(job.id) is None
    assert -1003 in store.met_chats() and -3 not in store.met_chats()
    assert store.note_video_sent(5) and not store.note_video_sent(5)
    store.set_keepalive_message(5, 42)
    assert store.keepalive_message(5) == 42 and store.keepalive_message(6) is None
    store.note_warnings_sent(100.0, [60, 30])
    assert store.warnings_sent(100.0) == {60, 30} and store.warnings_sent(200.0) == frozenset()


def test_a_runtime_event_remembers_each_chat_it_reached_until_forgotten(store: Store) -> None:
    event_id = store.add_event(None, Notice("colabot restarted"))
    other = store.add_event(None, Notice("another"))
    assert store.delivered_to(event_id) == set()
    store.note_delivered_to(event_id, 5)
    store.note_delivered_to(event_id, -7)
    store.note_delivered_to(event_id, 5)
    store.note_delivered_to(other, 9)
    assert store.delivered_to(event_id) == {5, -7}
    store.forget_deliveries(event_id)
    assert store.delivered_to(event_id) == set() and store.delivered_to(other) == {9}
