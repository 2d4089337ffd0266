"""The database's version, and the upgrade of a data folder an older colabot wrote."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from workers.errors import StoreError
from workers.events import Failed
from workers.jobs import Action, CheckpointNote, JobSpec, KeptOutput, StepRecord
from workers.quality import ModelScores, Quality, Score
from workers.store.connection import DB_NAME
from workers.store.database import Store
from workers.store.outbox import StatusRecord
from workers.store.schema import VERSION

# The first layout: jobs and events as today, everything else JSON in a key-value table.
V1_TABLES = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, spec TEXT NOT NULL, state TEXT NOT NULL,
    created_at REAL NOT NULL, started_at REAL, finished_at REAL,
    progress TEXT NOT NULL DEFAULT '{}', links TEXT NOT NULL DEFAULT '[]', error TEXT,
    origin TEXT NOT NULL DEFAULT '{}', attempt INTEGER NOT NULL DEFAULT 1, checkpoint TEXT,
    summary TEXT NOT NULL DEFAULT ''
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER, type TEXT NOT NULL,
    payload TEXT NOT NULL, created_at REAL NOT NULL, delivered_at REAL
);
CREATE INDEX events_pending ON events (delivered_at, id);
CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

V1_VALUES = {
    "process:1": {"pid": 4321, "mark": "colabot-mark"},
    "outputs:1": [{"role": "model", "path": "/data/jobs/1/outputs/model"}],
    "status:1": {"chat_id": -100, "message_id": 9, "text": "running"},
    "kept_inputs:1": {"labels.slp": "drive:abc"},
    "checkpoint_signature:1": [1.5, 2.5],
    "checkpoint_note:1": {"location": "drive:ckpt", "saved_at": 50.0, "progress": "epoch 2"},
    "keepalive:5": 77,
    "broadcast:3": [5],
    "warnings_sent:1000": [60],
    "chats": [5, -100],
    "forgotten_chats": [8],
    "chat_migrations": {"-7": -1007},
    "video_note_sent": [5],
    "status:2": "damaged",
}


def write_v1(folder: Path) -> None:
    """A data folder as colabot 0.1 left it, with one running job and one event."""
    folder.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(folder / DB_NAME)
    db.executescript(V1_TABLES)
    spec = {"kind": "selftest", "action": "train", "inputs": {}, "params": {}}
    db.execute(
        "INSERT INTO jobs (spec, state, created_at, origin) VALUES (?, 'running', 1.0, ?)",
        (json.dumps(spec), json.dumps({"chat_id": -100})),
    )
    db.execute(
        "INSERT INTO events (job_id, type, payload, created_at) VALUES (1, 'failed', ?, 2.0)",
        (json.dumps({"reason": "boom", "tail": ["x"], "step": "train"}),),
    )
    db.executemany(
        "INSERT INTO kv (key, value) VALUES (?, ?)",
        [(key, json.dumps(value)) for key, value in V1_VALUES.items()],
    )
    db.commit()
    db.close()


def test_a_new_database_has_the_current_version(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert store.upgraded_from == 0
    store.close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    assert db.execute("PRAGMA user_version").fetchone()[0] == VERSION
    db.close()


def test_an_older_data_folder_is_upgraded_and_keeps_everything(tmp_path: Path) -> None:
    write_v1(tmp_path)
    store = Store(tmp_path)
    assert store.upgraded_from == 1
    (step,) = store.open_steps(1)
    assert step.executor == "local" and step.ref == {"pid": 4321, "mark": "colabot-mark"}
    assert store.outputs(1) == [KeptOutput("model", "/data/jobs/1/outputs/model")]
    assert store.status_message(1) == StatusRecord(-100, 9, "running")
    assert store.status_message(2) is None
    assert store.kept_inputs(1) == {"labels.slp": "drive:abc"}
    assert store.checkpoint_note(1) == CheckpointNote("drive:ckpt", 50.0, "epoch 2")
    assert store.checkpoint_signature(1) == [1.5, 2.5]
    assert store.keepalive_message(5) == 77
    assert store.delivered_to(3) == {5}
    assert store.warnings_sent(1000.0) == {60}
    assert store.met_chats() == [5, -100]
    assert store.forgotten_chats() == {8}
    assert store.chat_migrations() == {-7: -1007}
    assert not store.note_video_sent(5)
    (event,) = store.pending_events()
    assert isinstance(event.payload, Failed) and event.payload.reason == "boom"
    store.close()
    # Opening it again changes nothing: the upgrade ran once.
    again = Store(tmp_path)
    assert again.upgraded_from == VERSION and again.kept_inputs(1) == {"labels.slp": "drive:abc"}
    again.close()


def test_a_database_from_a_newer_colabot_is_refused(tmp_path: Path) -> None:
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute(f"PRAGMA user_version = {VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="from a newer colabot"):
        Store(tmp_path)


def test_a_version_2_database_gains_the_log_length_of_each_open_step(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.executescript(
        "DROP TABLE job_steps;"
        "CREATE TABLE job_steps (job_id INTEGER NOT NULL, idx INTEGER NOT NULL, "
        "name TEXT NOT NULL, executor TEXT NOT NULL, ref TEXT NOT NULL DEFAULT '{}', "
        "started_at REAL NOT NULL, ended_at REAL, output_offset INTEGER NOT NULL DEFAULT 0, "
        "PRIMARY KEY (job_id, idx));"
        "INSERT INTO job_steps (job_id, idx, name, executor, ref, started_at, output_offset) "
        "VALUES (4, 0, 'train', 'slurm', '{\"slurm_job\": \"77\"}', 1.0, 120);"
        "PRAGMA user_version = 2;"
    )
    db.close()
    again = Store(tmp_path)
    (step,) = again.open_steps(4)
    assert again.upgraded_from == 2
    assert (step.output_offset, step.log_length, step.ref) == (120, -1, {"slurm_job": "77"})
    again.set_step_output(4, 0, 150, 900)
    assert again.open_steps(4)[0].log_length == 900


def test_a_version_3_database_gains_the_quality_table_and_keeps_its_jobs(tmp_path: Path) -> None:
    store = Store(tmp_path)
    job = store.add_job(JobSpec("selftest", Action.TRAIN, {}, {"steps": 2}))
    store.close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.executescript("DROP TABLE job_quality; PRAGMA user_version = 3;")
    db.close()
    again = Store(tmp_path)
    assert again.upgraded_from == 3
    assert again.get_job(job.id).spec.params == {"steps": 2}
    assert again.quality(job.id) is None
    kept = Quality(data="abc", models=(ModelScores("m", "val", (Score("F1", 0.5),)),))
    again.set_quality(job.id, "selftest", kept)
    assert again.quality(job.id) == kept
    again.close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    columns = [row[1] for row in db.execute("PRAGMA table_info(job_quality)")]
    assert columns == ["job_id", "kind", "data", "quality"]
    assert db.execute("PRAGMA user_version").fetchone()[0] == VERSION
    db.close()


def test_a_version_4_database_gains_owners_and_step_gpus_and_its_jobs_stay_open(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    job = store.add_job(JobSpec("selftest", Action.TRAIN, {}, {"steps": 2}))
    store.close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    # A version 4 database, as colabot wrote it before owners: no owner nor GPU columns.
    db.executescript(
        "ALTER TABLE jobs DROP COLUMN owner_id; ALTER TABLE jobs DROP COLUMN owner_name; "
        "ALTER TABLE job_steps DROP COLUMN gpus; PRAGMA user_version = 4;"
    )
    db.close()
    again = Store(tmp_path)
    assert again.upgraded_from == 4
    assert again.get_job(job.id).owner is None
    again.start_step(StepRecord(job.id, 0, "train", "local", {}, 1.0, gpus=1.0))
    assert again.open_steps(job.id)[0].gpus == 1.0
    again.close()
