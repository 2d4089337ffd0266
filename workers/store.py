"""SQLite record of jobs, the events outbox, and a small key-value table.

Every message a person should see is first an ``events`` row; it is marked delivered only after
whoever delivers it has had it accepted, so a crash or an outage loses nothing.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from workers.errors import (
    InvalidTransitionError,
    StoreBusyError,
    StoreError,
    StoreFullError,
    UnknownJobError,
)
from workers.jobs import (
    Event,
    EventType,
    Job,
    JobSpec,
    JobState,
    Link,
    Progress,
    check_transition,
)

SCHEMA = """
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
    summary TEXT NOT NULL DEFAULT ''
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
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

DB_NAME = "colabot.sqlite3"

_P = ParamSpec("_P")
_R = TypeVar("_R")


def store_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """A database failure in words: busy, full, read-only, corrupt, or unreadable."""
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return StoreBusyError(
            str(path), "colabot is busy (its database is locked); try again in a moment"
        )
    if "full" in text:
        return StoreFullError(str(path), "the disk is full; free some space")
    if "readonly" in text or "read-only" in text:
        return StoreError(
            str(path), "the database is read-only; check the data folder's permissions"
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StoreError(
            str(path), "the database is damaged; move it away to start with an empty one"
        )
    if "unable to open" in text:
        return StoreError(str(path), "the database cannot be opened; check the data folder")
    return StoreError(str(path), f"database error: {exc}")


def _translated(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn sqlite3 errors raised by a Store method into StoreError subclasses."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            store = args[0]
            assert isinstance(store, Store)
            raise store_error(store.path, exc) from None

    return wrapper


def _job_from_row(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        spec=JobSpec.from_dict(json.loads(row["spec"])),
        state=JobState(row["state"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        progress=Progress.from_dict(json.loads(row["progress"])),
        links=tuple(Link.from_dict(d) for d in json.loads(row["links"])),
        error=row["error"],
        origin=json.loads(row["origin"]),
        attempt=row["attempt"],
        checkpoint=row["checkpoint"],
        summary=row["summary"],
    )


def _event_from_row(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"],
        job_id=row["job_id"],
        type=EventType(row["type"]),
        payload=json.loads(row["payload"]),
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
    )


class Store:
    """Jobs, events and settings in one SQLite file (WAL mode) under the data directory.

    One connection, used from one thread (the event loop's); each method is one transaction.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / DB_NAME
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                str(data_dir), f"cannot create the data folder: {exc.strerror}"
            ) from None
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._db.execute("SELECT count(*) FROM jobs").fetchone()
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from None

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            # A COMMIT that failed (a full disk) leaves the transaction open: close it too.
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise

    # jobs -----------------------------------------------------------------------------------

    @_translated
    def add_job(
        self,
        spec: JobSpec,
        origin: dict[str, Any] | None = None,
        *,
        now: float | None = None,
        job_id: int | None = None,
        state: JobState = JobState.QUEUED,
    ) -> Job:
        """Insert a job (queued unless told otherwise) and its QUEUED event; return it.

        ``job_id`` keeps a known id, for jobs carried over from an earlier runtime.
        """
        now = time.time() if now is None else now
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO jobs (id, spec, state, created_at, origin) VALUES (?, ?, ?, ?, ?)",
                (job_id, json.dumps(spec.to_dict()), state.value, now, json.dumps(origin or {})),
            )
            new_id = int(cur.lastrowid or 0)
            if state is JobState.QUEUED:
                self._insert_event(db, new_id, EventType.QUEUED, {}, now)
        return self.get_job(new_id)

    @_translated
    def import_job(self, job: Job) -> Job:
        """Insert a job record carried over from another runtime, as it was (no event)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO jobs (id, spec, state, created_at, started_at, finished_at, "
                "progress, links, error, origin, attempt, checkpoint, summary) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.id,
                    json.dumps(job.spec.to_dict()),
                    job.state.value,
                    job.created_at,
                    job.started_at,
                    job.finished_at,
                    json.dumps(job.progress.to_dict()),
                    json.dumps([link.to_dict() for link in job.links]),
                    job.error,
                    json.dumps(job.origin),
                    job.attempt,
                    job.checkpoint,
                    job.summary,
                ),
            )
        self.reserve_ids_above(job.id)
        return self.get_job(job.id)

    @_translated
    def get_job(self, job_id: int) -> Job:
        """The job with this id, or UnknownJobError."""
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJobError(job_id)
        return _job_from_row(row)

    @_translated
    def find_job(self, job_id: int) -> Job | None:
        """The job with this id, or None."""
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job_from_row(row)

    @_translated
    def list_jobs(
        self, *, limit: int | None = None, states: Iterable[JobState] | None = None
    ) -> list[Job]:
        """Jobs, newest first, optionally only in ``states``."""
        sql = "SELECT * FROM jobs"
        args: list[Any] = []
        if states is not None:
            wanted = [s.value for s in states]
            sql += f" WHERE state IN ({','.join('?' * len(wanted))})"
            args.extend(wanted)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [_job_from_row(r) for r in self._db.execute(sql, args)]

    @_translated
    def next_queued(self, exclude: Iterable[int] = ()) -> Job | None:
        """The oldest queued job not in ``exclude``."""
        skip = list(exclude)
        sql = "SELECT * FROM jobs WHERE state = ?"
        if skip:
            sql += f" AND id NOT IN ({','.join('?' * len(skip))})"
        row = self._db.execute(sql + " ORDER BY id LIMIT 1", [JobState.QUEUED.value, *skip])
        found = row.fetchone()
        return None if found is None else _job_from_row(found)

    @_translated
    def transition(
        self,
        job_id: int,
        target: JobState,
        *,
        now: float | None = None,
        error: str | None = None,
        event: tuple[EventType, dict[str, Any]] | None = None,
    ) -> Job:
        """Move a job to ``target`` if the table allows it, with its event, atomically."""
        now = time.time() if now is None else now
        with self._tx() as db:
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise UnknownJobError(job_id)
            source = JobState(row["state"])
            check_transition(source, target)
            sets = ["state = ?"]
            args: list[Any] = [target.value]
            if target is JobState.RUNNING:
                sets += ["started_at = ?", "finished_at = NULL", "error = NULL"]
                args.append(now)
            elif target is JobState.QUEUED:
                sets += ["finished_at = NULL", "error = NULL", "attempt = attempt + 1"]
            else:
                sets.append("finished_at = ?")
                args.append(now)
            if error is not None:
                sets.append("error = ?")
                args.append(error)
            cur = db.execute(
                f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND state = ?",  # noqa: S608
                [*args, job_id, source.value],
            )
            if cur.rowcount != 1:
                raise InvalidTransitionError(source.value, target.value)
            if event is not None:
                self._insert_event(db, job_id, event[0], event[1], now)
        return self.get_job(job_id)

    @_translated
    def interrupt_running(self, *, now: float | None = None) -> list[Job]:
        """Mark every running job interrupted (after a restart); return them."""
        running = self.list_jobs(states=[JobState.RUNNING])
        return [
            self.transition(
                job.id,
                JobState.INTERRUPTED,
                now=now,
                error="colabot stopped while the job was running",
                event=(EventType.INTERRUPTED, {}),
            )
            for job in running
        ]

    @_translated
    def set_progress(self, job_id: int, progress: Progress) -> None:
        """Record the latest progress."""
        self._update(job_id, "progress", json.dumps(progress.to_dict()))

    @_translated
    def set_links(self, job_id: int, links: Iterable[Link]) -> None:
        """Record the result links."""
        self._update(job_id, "links", json.dumps([link.to_dict() for link in links]))

    @_translated
    def set_checkpoint(self, job_id: int, location: str | None) -> None:
        """Record where the newest saved checkpoint lives."""
        self._update(job_id, "checkpoint", location)

    @_translated
    def set_summary(self, job_id: int, summary: str) -> None:
        """Record the one-paragraph result summary."""
        self._update(job_id, "summary", summary)

    @_translated
    def set_spec(self, job_id: int, spec: JobSpec) -> None:
        """Replace a job's spec (inputs rewritten to where they were stored)."""
        self._update(job_id, "spec", json.dumps(spec.to_dict()))

    def _update(self, job_id: int, column: str, value: Any) -> None:
        # ``column`` is always one of this class's literals, never user text.
        sql = f"UPDATE jobs SET {column} = ? WHERE id = ?"  # noqa: S608
        cur = self._db.execute(sql, (value, job_id))
        if cur.rowcount != 1:
            raise UnknownJobError(job_id)

    @_translated
    def max_job_id(self) -> int:
        """The highest id ever used (0 when none)."""
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'").fetchone()
        return int(row["seq"]) if row else 0

    @_translated
    def reserve_ids_above(self, job_id: int) -> None:
        """Make sure new jobs get ids above ``job_id`` (ids stay unique across runtimes)."""
        if job_id <= self.max_job_id():
            return
        with self._tx() as db:
            if db.execute("SELECT 1 FROM sqlite_sequence WHERE name = 'jobs'").fetchone():
                db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'jobs'", (job_id,))
            else:
                db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('jobs', ?)", (job_id,))

    # events ---------------------------------------------------------------------------------

    @staticmethod
    def _insert_event(
        db: sqlite3.Connection,
        job_id: int | None,
        type_: EventType,
        payload: dict[str, Any],
        now: float,
    ) -> int:
        cur = db.execute(
            "INSERT INTO events (job_id, type, payload, created_at) VALUES (?, ?, ?, ?)",
            (job_id, type_.value, json.dumps(payload), now),
        )
        return int(cur.lastrowid or 0)

    @_translated
    def add_event(
        self,
        job_id: int | None,
        type_: EventType,
        payload: dict[str, Any] | None = None,
        *,
        now: float | None = None,
    ) -> int:
        """Append an event to the outbox; return its id."""
        now = time.time() if now is None else now
        with self._tx() as db:
            return self._insert_event(db, job_id, type_, payload or {}, now)

    @_translated
    def pending_events(self, limit: int = 100) -> list[Event]:
        """Undelivered events, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM events WHERE delivered_at IS NULL ORDER BY id LIMIT ?", (limit,)
        )
        return [_event_from_row(r) for r in rows]

    @_translated
    def events_for(self, job_id: int) -> list[Event]:
        """Every event of one job, oldest first."""
        rows = self._db.execute("SELECT * FROM events WHERE job_id = ? ORDER BY id", (job_id,))
        return [_event_from_row(r) for r in rows]

    @_translated
    def mark_delivered(self, event_id: int, *, now: float | None = None) -> None:
        """Record that an event reached its reader."""
        now = time.time() if now is None else now
        self._db.execute(
            "UPDATE events SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL",
            (now, event_id),
        )

    @_translated
    def move_chat(self, old: int, new: int) -> int:
        """Rewrite a chat id in every job's origin (a group became a supergroup); return how
        many jobs came from that chat."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE jobs SET origin = json_set(origin, '$.chat_id', ?) "
                "WHERE json_extract(origin, '$.chat_id') = ?",
                (new, old),
            )
            return int(cur.rowcount)

    @_translated
    def kv_keys(self, prefix: str) -> list[str]:
        """The keys that start with ``prefix``."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._db.execute("SELECT key FROM kv WHERE key LIKE ? ESCAPE '\\'", (pattern,))
        return [str(row["key"]) for row in rows]

    # key-value ------------------------------------------------------------------------------

    @_translated
    def kv_get(self, key: str) -> Any:
        """A stored JSON value, or None."""
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row["value"])

    @_translated
    def kv_set(self, key: str, value: Any) -> None:
        """Store a JSON value (None deletes the key)."""
        if value is None:
            self._db.execute("DELETE FROM kv WHERE key = ?", (key,))
            return
        self._db.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )
