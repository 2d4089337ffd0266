"""The database's tables, its version, and the steps that bring an older ``data_dir`` up to
date.

The version lives in SQLite's ``user_version``. Version 1 (no version set) kept job and chat
metadata as JSON values in a key-value table; version 2 gives each of them a table of its
own; version 3 records, with a step's output offset, how long the job log was at that
point; version 4 keeps how good each training job's models are (``job_quality``: its kind,
a fingerprint of its training data and the held-out scores); version 5 records who started
each job (``owner_id``, ``owner_name``: empty for older jobs, which stay open to every
allowed user) and how many GPUs each step held (0 for older steps). A database newer than this
colabot is refused rather than misread.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from workers.errors import StoreError

VERSION = 5

TABLES = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    progress TEXT NOT NULL DEFAULT '{}',
    links TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    origin TEXT NOT NULL DEFAULT '{}',
    attempt INTEGER NOT NULL DEFAULT 1,
    checkpoint TEXT,
    summary TEXT NOT NULL DEFAULT '',
    owner_id INTEGER,
    owner_name TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS events_pending ON events (delivered_at, id);
CREATE TABLE IF NOT EXISTS job_steps (
    job_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    executor TEXT NOT NULL,
    ref TEXT NOT NULL DEFAULT '{}',
    started_at REAL NOT NULL,
    ended_at REAL,
    output_offset INTEGER NOT NULL DEFAULT 0,
    log_length INTEGER NOT NULL DEFAULT -1,
    gpus REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS job_outputs (
    job_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    role TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (job_id, position)
);
CREATE TABLE IF NOT EXISTS kept_inputs (
    job_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    location TEXT NOT NULL,
    PRIMARY KEY (job_id, name)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    job_id INTEGER PRIMARY KEY,
    location TEXT NOT NULL,
    saved_at REAL NOT NULL,
    progress TEXT NOT NULL DEFAULT '',
    signature TEXT
);
CREATE TABLE IF NOT EXISTS status_messages (
    job_id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chats (
    chat_id INTEGER PRIMARY KEY,
    met_at REAL,
    forgotten_at REAL,
    forgotten_reason TEXT,
    video_note_sent INTEGER NOT NULL DEFAULT 0,
    keepalive_message_id INTEGER
);
CREATE TABLE IF NOT EXISTS chat_migrations (
    old_id INTEGER PRIMARY KEY,
    new_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS broadcasts (
    event_id INTEGER NOT NULL,
    chat_id INTEGER NOT NULL,
    PRIMARY KEY (event_id, chat_id)
);
CREATE TABLE IF NOT EXISTS warnings_sent (
    runtime_started REAL NOT NULL,
    minutes INTEGER NOT NULL,
    PRIMARY KEY (runtime_started, minutes)
);
"""

QUALITY_TABLE = """
CREATE TABLE IF NOT EXISTS job_quality (
    job_id INTEGER PRIMARY KEY REFERENCES jobs(id),
    kind TEXT,
    data TEXT,
    quality TEXT
);
CREATE INDEX IF NOT EXISTS job_quality_data ON job_quality (kind, data, job_id);
"""
"""Per training job: its kind, the fingerprint of its training data, and its
:class:`~workers.quality.Quality` as JSON (added in version 4)."""


def _all_tables() -> str:
    return TABLES + QUALITY_TABLE


def version_of(db: sqlite3.Connection) -> int:
    """The schema version of an open database: 0 for an empty one, 1 for the first layout."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version:
        return version
    has_jobs = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone()
    return 1 if has_jobs else 0


def prepare(db: sqlite3.Connection, where: str) -> int:
    """Create the tables, or bring an older database up to :data:`VERSION`; return the
    version it had. Raise StoreError for a database a newer colabot wrote."""
    found = version_of(db)
    if found > VERSION:
        raise StoreError(
            where,
            f"the database is from a newer colabot (schema {found}; this one reads up to "
            f"{VERSION}); upgrade colabot, or move the data folder away",
        )
    db.execute("BEGIN IMMEDIATE")
    try:
        for statement in _statements(_all_tables()):
            db.execute(statement)
        for version in range(max(found, 1), VERSION):
            MIGRATIONS[version](db)
        db.execute(f"PRAGMA user_version = {VERSION}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return found


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


# ------------------------------------------------------------------------- 1 -> 2


def _from_v1(db: sqlite3.Connection) -> None:
    """Move each key-value family of version 1 into its table, then drop the key-value table."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'kv'").fetchone():
        return
    rows = db.execute("SELECT key, value FROM kv").fetchall()
    values: dict[str, Any] = {}
    for key, raw in rows:
        try:
            values[str(key)] = json.loads(raw)
        except ValueError:
            continue
    for family, mover in _V1_FAMILIES.items():
        for key, value in values.items():
            name, _, rest = key.partition(":")
            if name != family:
                continue
            try:
                mover(db, rest, value)
            except (TypeError, ValueError, KeyError, AttributeError):
                continue  # a damaged value: what it said is lost, the rest moves on
    db.execute("DROP TABLE kv")


def _v1_steps(db: sqlite3.Connection, job: str, value: Any) -> None:
    ref = {"pid": int(value["pid"]), "mark": str(value["mark"])}
    db.execute(
        "INSERT OR REPLACE INTO job_steps (job_id, idx, name, executor, ref, started_at) "
        "VALUES (?, 0, '', 'local', ?, 0)",
        (int(job), json.dumps(ref)),
    )


def _v1_outputs(db: sqlite3.Connection, job: str, value: Any) -> None:
    for position, item in enumerate(value):
        db.execute(
            "INSERT OR REPLACE INTO job_outputs (job_id, position, role, path) VALUES (?, ?, ?, ?)",
            (int(job), position, str(item["role"]), str(item["path"])),
        )


def _v1_status(db: sqlite3.Connection, job: str, value: Any) -> None:
    db.execute(
        "INSERT OR REPLACE INTO status_messages (job_id, chat_id, message_id, text) "
        "VALUES (?, ?, ?, ?)",
        (int(job), int(value["chat_id"]), int(value["message_id"]), str(value["text"])),
    )


def _v1_kept_inputs(db: sqlite3.Connection, job: str, value: Any) -> None:
    for name, location in dict(value).items():
        db.execute(
            "INSERT OR REPLACE INTO kept_inputs (job_id, name, location) VALUES (?, ?, ?)",
            (int(job), str(name), str(location)),
        )


def _v1_checkpoint_note(db: sqlite3.Connection, job: str, value: Any) -> None:
    db.execute(
        "INSERT INTO checkpoints (job_id, location, saved_at, progress) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(job_id) DO UPDATE SET location = excluded.location, "
        "saved_at = excluded.saved_at, progress = excluded.progress",
        (int(job), str(value["location"]), float(value["saved_at"]), str(value["progress"])),
    )


def _v1_checkpoint_signature(db: sqlite3.Connection, job: str, value: Any) -> None:
    db.execute(
        "UPDATE checkpoints SET signature = ? WHERE job_id = ?",
        (json.dumps([float(v) for v in value]), int(job)),
    )


def _v1_keepalive(db: sqlite3.Connection, chat: str, value: Any) -> None:
    _chat_row(db, int(chat))
    db.execute(
        "UPDATE chats SET keepalive_message_id = ? WHERE chat_id = ?", (int(value), int(chat))
    )


def _v1_broadcast(db: sqlite3.Connection, event: str, value: Any) -> None:
    for chat in value:
        db.execute(
            "INSERT OR IGNORE INTO broadcasts (event_id, chat_id) VALUES (?, ?)",
            (int(event), int(chat)),
        )


def _v1_warnings(db: sqlite3.Connection, started: str, value: Any) -> None:
    for minutes in value:
        db.execute(
            "INSERT OR IGNORE INTO warnings_sent (runtime_started, minutes) VALUES (?, ?)",
            (float(started), int(minutes)),
        )


def _v1_chats(db: sqlite3.Connection, _: str, value: Any) -> None:
    for order, chat in enumerate(value):
        _chat_row(db, int(chat))
        db.execute("UPDATE chats SET met_at = ? WHERE chat_id = ?", (float(order), int(chat)))


def _v1_forgotten(db: sqlite3.Connection, _: str, value: Any) -> None:
    for chat in value:
        _chat_row(db, int(chat))
        db.execute(
            "UPDATE chats SET forgotten_at = 0, forgotten_reason = 'before the upgrade' "
            "WHERE chat_id = ?",
            (int(chat),),
        )


def _v1_migrations(db: sqlite3.Connection, _: str, value: Any) -> None:
    for old, new in dict(value).items():
        db.execute(
            "INSERT OR REPLACE INTO chat_migrations (old_id, new_id) VALUES (?, ?)",
            (int(old), int(new)),
        )


def _v1_video_notes(db: sqlite3.Connection, _: str, value: Any) -> None:
    for chat in value:
        _chat_row(db, int(chat))
        db.execute("UPDATE chats SET video_note_sent = 1 WHERE chat_id = ?", (int(chat),))


def _chat_row(db: sqlite3.Connection, chat_id: int) -> None:
    db.execute("INSERT OR IGNORE INTO chats (chat_id) VALUES (?)", (chat_id,))


# Checkpoint notes come before their signatures: a signature updates a note's row.
_V1_FAMILIES: dict[str, Callable[[sqlite3.Connection, str, Any], None]] = {
    "process": _v1_steps,
    "outputs": _v1_outputs,
    "status": _v1_status,
    "kept_inputs": _v1_kept_inputs,
    "checkpoint_note": _v1_checkpoint_note,
    "checkpoint_signature": _v1_checkpoint_signature,
    "keepalive": _v1_keepalive,
    "broadcast": _v1_broadcast,
    "warnings_sent": _v1_warnings,
    "chats": _v1_chats,
    "forgotten_chats": _v1_forgotten,
    "chat_migrations": _v1_migrations,
    "video_note_sent": _v1_video_notes,
}

# ------------------------------------------------------------------------- 2 -> 3


def _from_v2(db: sqlite3.Connection) -> None:
    """Give each step the log length that goes with its output offset (-1: not known)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(job_steps)")}
    if "log_length" not in columns:
        db.execute("ALTER TABLE job_steps ADD COLUMN log_length INTEGER NOT NULL DEFAULT -1")


# ------------------------------------------------------------------------- 3 -> 4


def _from_v3(db: sqlite3.Connection) -> None:
    """Add the table of each training job's held-out scores (empty: older jobs have none)."""
    for statement in _statements(QUALITY_TABLE):
        db.execute(statement)


# ------------------------------------------------------------------------- 4 -> 5


def _from_v4(db: sqlite3.Connection) -> None:
    """Add each job's owner (none for older jobs) and each step's GPUs (0 for older steps)."""
    jobs = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    if "owner_id" not in jobs:
        db.execute("ALTER TABLE jobs ADD COLUMN owner_id INTEGER")
    if "owner_name" not in jobs:
        db.execute("ALTER TABLE jobs ADD COLUMN owner_name TEXT NOT NULL DEFAULT ''")
    steps = {row[1] for row in db.execute("PRAGMA table_info(job_steps)")}
    if "gpus" not in steps:
        db.execute("ALTER TABLE job_steps ADD COLUMN gpus REAL NOT NULL DEFAULT 0")


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _from_v1,
    2: _from_v2,
    3: _from_v3,
    4: _from_v4,
}
"""``MIGRATIONS[n]`` brings a version ``n`` database to version ``n + 1``."""
