"""The outbox's typed events and their one converter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workers.events import (
    TYPES,
    Album,
    Cancelled,
    EventType,
    Failed,
    FileReady,
    Interrupted,
    Keepalive,
    Notice,
    NoticeButton,
    Payload,
    Queued,
    Resumed,
    Started,
    Succeeded,
    decode,
    encode,
    type_of,
)
from workers.jobs import Action, JobSpec, Link
from workers.store.database import Store

EXAMPLES: list[Payload] = [
    Queued(),
    Resumed(),
    Started(3),
    Notice("plain <text>"),
    Notice(html="<b>hi</b>", buttons=[[NoticeButton("Resume #4", "rs:4")]]),
    Succeeded("done", [Link("model", "https://example.org/m", 12)], {"loss": 0.5}),
    Failed("out of memory", ["line 1", "line 2"], "train"),
    Cancelled(),
    Interrupted("the cluster went away"),
    FileReady("/tmp/loss.png", "loss curve", photo=True),
    FileReady("/tmp/clip.mp4", "predictions", video=True),
    Album(["/tmp/a.png", "/tmp/b.png"], ["frame 1", "frame 2"], "frames to check"),
    Keepalive("<i>alive</i>", [[NoticeButton("Status", "st:1")]]),
]


def test_every_event_type_has_one_payload_class() -> None:
    assert set(TYPES) == set(EventType)
    assert {type(example) for example in EXAMPLES} == set(TYPES.values())


@pytest.mark.parametrize("payload", EXAMPLES, ids=lambda p: type(p).__name__)
def test_payloads_round_trip_through_json(payload: Payload) -> None:
    stored = json.loads(json.dumps(encode(payload)))
    assert decode(type_of(payload), stored) == payload


def test_rows_written_by_an_older_colabot_still_read() -> None:
    # Fields it did not know yet take their defaults; fields it no longer writes are ignored.
    assert decode(EventType.FAILED, {"reason": "boom", "extra": 1}) == Failed("boom")
    assert decode(EventType.SUCCEEDED, {"summary": "s"}) == Succeeded("s")
    assert decode(EventType.NOTICE, {"html": "<b>x</b>"}) == Notice(html="<b>x</b>")


def test_a_new_keepalive_replaces_the_one_still_waiting(tmp_path: Path) -> None:
    store = Store(tmp_path)
    job = store.add_job(JobSpec("selftest", Action.TRAIN))
    store.add_event(None, Keepalive("first"))
    store.add_event(None, Notice("a warning"))
    store.add_event(None, Keepalive("second"))
    pending = [e.payload for e in store.pending_events()]
    assert pending == [Queued(), Notice("a warning"), Keepalive("second")]
    delivered = store.pending_events()[-1].id
    store.mark_delivered(delivered)
    store.add_event(None, Keepalive("third"))
    assert store.events_for(job.id)[0].payload == Queued()
    assert [e.payload for e in store.pending_events()][-1] == Keepalive("third")
    store.close()
