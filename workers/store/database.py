"""SQLite record of jobs, the events outbox, and what colabot keeps about jobs and chats.

Every message a person should see is first an ``events`` row; it is marked delivered only after
whoever delivers it has had it accepted, so a crash or an outage loses nothing.

Text enters the database through :func:`scrubbed` only: every text a job, an exception or a
service produced (an error, a notice, a failure's tail, a progress message, a summary) is
redacted on its way in, like the log and the chat. What colabot must use again as it was
stays as it was: a job's spec (what the user typed), and locations (paths and links).
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from workers.errors import (
    InvalidTransitionError,
    StoreBusyError,
    StoreError,
    StoreFullError,
    UnknownJobError,
)
from workers.events import (
    Event,
    EventType,
    Interrupted,
    Keepalive,
    Payload,
    Queued,
    decode,
    encode,
    type_of,
)
from workers.jobs import (
    CheckpointNote,
    Job,
    JobSpec,
    JobState,
    KeptOutput,
    Link,
    Progress,
    StepRecord,
    check_transition,
)
from workers.safety.files import FILE_MODE
from workers.safety.redaction import SECRETS
from workers.store.datadir import make_private
from workers.store.schema import prepare

DB_NAME = "colabot.sqlite3"
INTERRUPTED_REASON = "colabot stopped while the job was running"
# SQLite's companions of the database file, in WAL mode.
DB_SUFFIXES = ("", "-wal", "-shm")
# Keys whose values are locations colabot made and must use again: kept as they are.
LOCATION_KEYS = frozenset({"path", "url", "link"})

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


def scrubbed(value: Any) -> Any:
    """A value on its way into the database with every text in it redacted
    (:data:`workers.safety.redaction.SECRETS`), in lists and dicts too; the values of
    :data:`LOCATION_KEYS` are kept as they are."""
    if isinstance(value, str):
        return SECRETS.redact(value)
    if isinstance(value, list | tuple):
        return [scrubbed(item) for item in value]
    if isinstance(value, dict):
        return {
            key: item if key in LOCATION_KEYS and isinstance(item, str) else scrubbed(item)
            for key, item in value.items()
        }
    return value


def _private_database(path: Path) -> None:
    """Make the database and its WAL files 0600 where an older colabot left them readable by
    others (new ones are private already: the data folder's umask)."""
    for suffix in DB_SUFFIXES:
        file = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            mode = file.lstat().st_mode
            if stat.S_ISREG(mode) and stat.S_IMODE(mode) != FILE_MODE:
                file.chmod(FILE_MODE)


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
        payload=decode(EventType(row["type"]), json.loads(row["payload"])),
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
            make_private(data_dir)
            _private_database(self.path)
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
            self.upgraded_from = prepare(self._db, str(self.path))
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
                self._insert_event(db, new_id, Queued(), now)
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
                    json.dumps(scrubbed(job.progress.to_dict())),
                    json.dumps([link.to_dict() for link in job.links]),
                    scrubbed(job.error),
                    json.dumps(job.origin),
                    job.attempt,
                    job.checkpoint,
                    scrubbed(job.summary),
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
        event: Payload | None = None,
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
                args.append(scrubbed(error))
            cur = db.execute(
                f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND state = ?",  # noqa: S608
                [*args, job_id, source.value],
            )
            if cur.rowcount != 1:
                raise InvalidTransitionError(source.value, target.value)
            if event is not None:
                self._insert_event(db, job_id, event, now)
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
                error=INTERRUPTED_REASON,
                event=Interrupted(INTERRUPTED_REASON),
            )
            for job in running
        ]

    @_translated
    def set_progress(self, job_id: int, progress: Progress) -> None:
        """Record the latest progress."""
        self._update(job_id, "progress", json.dumps(scrubbed(progress.to_dict())))

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
        self._update(job_id, "summary", scrubbed(summary))

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
        db: sqlite3.Connection, job_id: int | None, payload: Payload, now: float
    ) -> int:
        kind = type_of(payload)
        if isinstance(payload, Keepalive):
            # Only the newest keepalive matters: it replaces one still waiting.
            db.execute("DELETE FROM events WHERE type = ? AND delivered_at IS NULL", (kind.value,))
        cur = db.execute(
            "INSERT INTO events (job_id, type, payload, created_at) VALUES (?, ?, ?, ?)",
            (job_id, kind.value, json.dumps(scrubbed(encode(payload))), now),
        )
        return int(cur.lastrowid or 0)

    @_translated
    def add_event(self, job_id: int | None, payload: Payload, *, now: float | None = None) -> int:
        """Append an event to the outbox; return its id."""
        now = time.time() if now is None else now
        with self._tx() as db:
            return self._insert_event(db, job_id, payload, now)

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
    def delivered_to(self, event_id: int) -> set[int]:
        """The chats a runtime event already reached."""
        rows = self._db.execute("SELECT chat_id FROM broadcasts WHERE event_id = ?", (event_id,))
        return {int(row["chat_id"]) for row in rows}

    @_translated
    def note_delivered_to(self, event_id: int, chat_id: int) -> None:
        """Record that a runtime event reached one chat."""
        self._db.execute(
            "INSERT OR IGNORE INTO broadcasts (event_id, chat_id) VALUES (?, ?)",
            (event_id, chat_id),
        )

    @_translated
    def forget_deliveries(self, event_id: int) -> None:
        """A runtime event reached every chat: its per-chat record is no longer needed."""
        self._db.execute("DELETE FROM broadcasts WHERE event_id = ?", (event_id,))

    # job metadata ---------------------------------------------------------------------------

    @_translated
    def start_step(self, record: StepRecord) -> None:
        """Record a step that started (replacing an earlier record of the same step)."""
        self._db.execute(
            "INSERT OR REPLACE INTO job_steps (job_id, idx, name, executor, ref, started_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                record.job_id,
                record.index,
                record.name,
                record.executor,
                json.dumps(record.ref),
                record.started_at,
            ),
        )

    @_translated
    def end_step(self, job_id: int, index: int, *, now: float | None = None) -> None:
        """Record that a step is over."""
        self._db.execute(
            "UPDATE job_steps SET ended_at = ? WHERE job_id = ? AND idx = ?",
            (time.time() if now is None else now, job_id, index),
        )

    @_translated
    def open_steps(self, job_id: int) -> list[StepRecord]:
        """The steps of a job that started and were not seen to end, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM job_steps WHERE job_id = ? AND ended_at IS NULL ORDER BY idx",
            (job_id,),
        )
        return [
            StepRecord(
                job_id=int(row["job_id"]),
                index=int(row["idx"]),
                name=str(row["name"]),
                executor=str(row["executor"]),
                ref=json.loads(row["ref"]),
                started_at=float(row["started_at"]),
                output_offset=int(row["output_offset"]),
                log_length=int(row["log_length"]),
            )
            for row in rows
        ]

    @_translated
    def set_step_output(self, job_id: int, index: int, offset: int, log_length: int) -> None:
        """Record how many bytes of a step's output are in the job log, and how long the log
        was then."""
        self._db.execute(
            "UPDATE job_steps SET output_offset = ?, log_length = ? WHERE job_id = ? AND idx = ?",
            (offset, log_length, job_id, index),
        )

    @_translated
    def set_outputs(self, job_id: int, outputs: Iterable[KeptOutput]) -> None:
        """Record the outputs a finished job left on this machine."""
        with self._tx() as db:
            db.execute("DELETE FROM job_outputs WHERE job_id = ?", (job_id,))
            db.executemany(
                "INSERT INTO job_outputs (job_id, position, role, path) VALUES (?, ?, ?, ?)",
                [(job_id, i, o.role, o.path) for i, o in enumerate(outputs)],
            )

    @_translated
    def outputs(self, job_id: int) -> list[KeptOutput]:
        """The outputs a finished job left on this machine, in order."""
        rows = self._db.execute(
            "SELECT role, path FROM job_outputs WHERE job_id = ? ORDER BY position", (job_id,)
        )
        return [KeptOutput(str(row["role"]), str(row["path"])) for row in rows]

    @_translated
    def keep_input(self, job_id: int, name: str, location: str) -> None:
        """Record where a copy of an uploaded input was kept off the machine."""
        self._db.execute(
            "INSERT OR REPLACE INTO kept_inputs (job_id, name, location) VALUES (?, ?, ?)",
            (job_id, name, location),
        )

    @_translated
    def kept_inputs(self, job_id: int) -> dict[str, str]:
        """Name -> where a copy of each uploaded input of a job is kept."""
        rows = self._db.execute(
            "SELECT name, location FROM kept_inputs WHERE job_id = ? ORDER BY name", (job_id,)
        )
        return {str(row["name"]): str(row["location"]) for row in rows}

    @_translated
    def save_checkpoint_note(
        self, job_id: int, note: CheckpointNote, signature: list[float] | None = None
    ) -> None:
        """Record when and at what progress a job's checkpoint was saved off the machine, and
        the signature of the files saved (to skip copying them again)."""
        self._db.execute(
            "INSERT OR REPLACE INTO checkpoints (job_id, location, saved_at, progress, signature) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                job_id,
                note.location,
                note.saved_at,
                note.progress,
                None if signature is None else json.dumps(signature),
            ),
        )

    @_translated
    def checkpoint_note(self, job_id: int) -> CheckpointNote | None:
        """When and at what progress a job's checkpoint was last saved."""
        row = self._db.execute("SELECT * FROM checkpoints WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        return CheckpointNote(str(row["location"]), float(row["saved_at"]), str(row["progress"]))

    @_translated
    def checkpoint_signature(self, job_id: int) -> list[float] | None:
        """The signature of the checkpoint files last saved for a job."""
        row = self._db.execute(
            "SELECT signature FROM checkpoints WHERE job_id = ?", (job_id,)
        ).fetchone()
        if row is None or row["signature"] is None:
            return None
        return [float(v) for v in json.loads(row["signature"])]

    # chats ----------------------------------------------------------------------------------

    @_translated
    def status_message(self, job_id: int) -> StatusRecord | None:
        """Where a job's status message is, and what it last said."""
        row = self._db.execute(
            "SELECT * FROM status_messages WHERE job_id = ?", (job_id,)
        ).fetchone()
        if row is None:
            return None
        return StatusRecord(int(row["chat_id"]), int(row["message_id"]), str(row["text"]))

    @_translated
    def save_status_message(self, job_id: int, status: StatusRecord) -> None:
        """Record where a job's status message is, and what it says."""
        self._db.execute(
            "INSERT OR REPLACE INTO status_messages (job_id, chat_id, message_id, text) "
            "VALUES (?, ?, ?, ?)",
            (job_id, status.chat_id, status.message_id, scrubbed(status.text)),
        )

    @_translated
    def met_chats(self) -> list[int]:
        """Chats colabot has met, oldest first."""
        rows = self._db.execute(
            "SELECT chat_id FROM chats WHERE met_at IS NOT NULL ORDER BY met_at, chat_id"
        )
        return [int(row["chat_id"]) for row in rows]

    @_translated
    def meet_chat(self, chat_id: int, *, keep: int, now: float | None = None) -> None:
        """Remember a chat someone used (no longer forgotten); keep the newest ``keep``."""
        now = time.time() if now is None else now
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO chats (chat_id) VALUES (?)", (chat_id,))
            db.execute(
                "UPDATE chats SET met_at = coalesce(met_at, ?), forgotten_at = NULL, "
                "forgotten_reason = NULL WHERE chat_id = ?",
                (now, chat_id),
            )
            db.execute(
                "UPDATE chats SET met_at = NULL WHERE chat_id IN (SELECT chat_id FROM chats "
                "WHERE met_at IS NOT NULL ORDER BY met_at DESC, chat_id DESC LIMIT -1 OFFSET ?)",
                (keep,),
            )

    @_translated
    def forget_chat(self, chat_id: int, reason: str, *, now: float | None = None) -> None:
        """Stop counting a chat that blocked or removed the bot (until it is met again)."""
        now = time.time() if now is None else now
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO chats (chat_id) VALUES (?)", (chat_id,))
            db.execute(
                "UPDATE chats SET met_at = NULL, forgotten_at = ?, forgotten_reason = ? "
                "WHERE chat_id = ?",
                (now, scrubbed(reason), chat_id),
            )

    @_translated
    def forgotten_chats(self) -> set[int]:
        """Chats that blocked or removed the bot."""
        rows = self._db.execute("SELECT chat_id FROM chats WHERE forgotten_at IS NOT NULL")
        return {int(row["chat_id"]) for row in rows}

    @_translated
    def chat_migrations(self) -> dict[int, int]:
        """Old group id -> the supergroup it became."""
        rows = self._db.execute("SELECT old_id, new_id FROM chat_migrations")
        return {int(row["old_id"]): int(row["new_id"]) for row in rows}

    @_translated
    def migrate_chat(self, old: int, new: int) -> int:
        """Record that group ``old`` became supergroup ``new`` and move what colabot keeps
        about it, in one transaction; return how many jobs came from that chat.

        Messages stay behind in the old chat (their ids mean nothing in the new one), so the
        status messages and the keepalive there are dropped, to be posted afresh.
        """
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO chat_migrations (old_id, new_id) VALUES (?, ?)", (old, new)
            )
            row = db.execute("SELECT met_at FROM chats WHERE chat_id = ?", (old,)).fetchone()
            db.execute("INSERT OR IGNORE INTO chats (chat_id) VALUES (?)", (new,))
            if row is not None and row["met_at"] is not None:
                db.execute(
                    "UPDATE chats SET met_at = coalesce(met_at, ?) WHERE chat_id = ?",
                    (row["met_at"], new),
                )
            db.execute("DELETE FROM chats WHERE chat_id = ?", (old,))
            db.execute("DELETE FROM status_messages WHERE chat_id = ?", (old,))
            cur = db.execute(
                "UPDATE jobs SET origin = json_set(origin, '$.chat_id', ?) "
                "WHERE json_extract(origin, '$.chat_id') = ?",
                (new, old),
            )
            return int(cur.rowcount)

    @_translated
    def note_video_sent(self, chat_id: int) -> bool:
        """Record that a chat was told how videos are re-encoded; False if it already was."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO chats (chat_id) VALUES (?)", (chat_id,))
            cur = db.execute(
                "UPDATE chats SET video_note_sent = 1 WHERE chat_id = ? AND video_note_sent = 0",
                (chat_id,),
            )
            return cur.rowcount == 1

    @_translated
    def keepalive_message(self, chat_id: int) -> int | None:
        """The id of the keepalive message shown in a chat."""
        row = self._db.execute(
            "SELECT keepalive_message_id FROM chats WHERE chat_id = ?", (chat_id,)
        ).fetchone()
        value = None if row is None else row["keepalive_message_id"]
        return None if value is None else int(value)

    @_translated
    def set_keepalive_message(self, chat_id: int, message_id: int) -> None:
        """Record the keepalive message shown in a chat."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO chats (chat_id) VALUES (?)", (chat_id,))
            db.execute(
                "UPDATE chats SET keepalive_message_id = ? WHERE chat_id = ?", (message_id, chat_id)
            )

    # runtime warnings -----------------------------------------------------------------------

    @_translated
    def warnings_sent(self, runtime_started: float) -> frozenset[int]:
        """Lead times (minutes) already warned about on the runtime that started then."""
        rows = self._db.execute(
            "SELECT minutes FROM warnings_sent WHERE runtime_started = ?", (runtime_started,)
        )
        return frozenset(int(row["minutes"]) for row in rows)

    @_translated
    def note_warnings_sent(self, runtime_started: float, minutes: Iterable[int]) -> None:
        """Record lead times warned about on a runtime."""
        self._db.executemany(
            "INSERT OR IGNORE INTO warnings_sent (runtime_started, minutes) VALUES (?, ?)",
            [(runtime_started, int(m)) for m in minutes],
        )


@dataclass(frozen=True)
class StatusRecord:
    """Where a job's status message is in the chat, and what it last said."""

    chat_id: int
    message_id: int
    text: str
