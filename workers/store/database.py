"""SQLite record of jobs: their state and its transitions, their steps, the outputs they
left, the inputs kept off the machine, their checkpoints, and how good a training job's
models are (its :class:`~workers.quality.Quality`).

:class:`Store` is the one store colabot has: these job tables, with the outbox's
(:class:`~workers.store.outbox.Outbox`: events and what was delivered where) on the same
connection (:mod:`workers.store.connection`), so a state change and its event are written in
one transaction. Text enters the database through
:func:`~workers.store.connection.scrubbed` only.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from workers.errors import InvalidTransitionError, UnknownJobError
from workers.events import Interrupted, Payload, Queued
from workers.jobs import (
    Action,
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
from workers.quality import Quality
from workers.sharing.accounting import StepSpan
from workers.sharing.owners import Owner
from workers.store.connection import scrubbed, translated
from workers.store.outbox import Outbox

INTERRUPTED_REASON = "colabot stopped while the job was running"


def _owner_columns(owner: Owner | None) -> tuple[int | None, str]:
    return (None, "") if owner is None else (owner.user_id, owner.name)


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
        owner=None if row["owner_id"] is None else Owner(row["owner_id"], row["owner_name"]),
    )


class Store(Outbox):
    """Jobs, their metadata and the outbox in one SQLite file (WAL mode) under the data
    directory.

    One connection, used from one thread (the event loop's); each method is one transaction.
    """

    # jobs -----------------------------------------------------------------------------------

    @translated
    def add_job(
        self,
        spec: JobSpec,
        origin: dict[str, Any] | None = None,
        *,
        now: float | None = None,
        job_id: int | None = None,
        state: JobState = JobState.QUEUED,
        owner: Owner | None = None,
    ) -> Job:
        """Insert a job (queued unless told otherwise) and its QUEUED event; return it.

        ``job_id`` keeps a known id, for jobs carried over from an earlier runtime.
        """
        now = time.time() if now is None else now
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO jobs (id, spec, state, created_at, origin, owner_id, owner_name) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    json.dumps(spec.to_dict()),
                    state.value,
                    now,
                    json.dumps(origin or {}),
                    *_owner_columns(owner),
                ),
            )
            new_id = int(cur.lastrowid or 0)
            if state is JobState.QUEUED:
                self._insert_event(db, new_id, Queued(), now)
        return self.get_job(new_id)

    @translated
    def import_job(self, job: Job) -> Job:
        """Insert a job record carried over from another runtime, as it was (no event)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO jobs (id, spec, state, created_at, started_at, finished_at, "
                "progress, links, error, origin, attempt, checkpoint, summary, owner_id, "
                "owner_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    *_owner_columns(job.owner),
                ),
            )
        self.reserve_ids_above(job.id)
        return self.get_job(job.id)

    @translated
    def get_job(self, job_id: int) -> Job:
        """The job with this id, or UnknownJobError."""
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJobError(job_id)
        return _job_from_row(row)

    @translated
    def find_job(self, job_id: int) -> Job | None:
        """The job with this id, or None."""
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job_from_row(row)

    @translated
    def list_jobs(
        self,
        *,
        limit: int | None = None,
        states: Iterable[JobState] | None = None,
        owner_id: int | None = None,
    ) -> list[Job]:
        """Jobs, newest first, optionally only in ``states``, and only ``owner_id``'s (with
        the jobs nobody owns)."""
        sql = "SELECT * FROM jobs WHERE 1"
        args: list[Any] = []
        if states is not None:
            wanted = [s.value for s in states]
            sql += f" AND state IN ({','.join('?' * len(wanted))})"
            args.extend(wanted)
        if owner_id is not None:
            sql += " AND (owner_id = ? OR owner_id IS NULL)"
            args.append(owner_id)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [_job_from_row(r) for r in self._db.execute(sql, args)]

    @translated
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

    @translated
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

    @translated
    def set_progress(self, job_id: int, progress: Progress) -> None:
        """Record the latest progress."""
        self._update(job_id, "progress", json.dumps(scrubbed(progress.to_dict())))

    @translated
    def set_links(self, job_id: int, links: Iterable[Link]) -> None:
        """Record the result links."""
        self._update(job_id, "links", json.dumps([link.to_dict() for link in links]))

    @translated
    def set_checkpoint(self, job_id: int, location: str | None) -> None:
        """Record where the newest saved checkpoint lives."""
        self._update(job_id, "checkpoint", location)

    @translated
    def set_summary(self, job_id: int, summary: str) -> None:
        """Record the one-paragraph result summary."""
        self._update(job_id, "summary", scrubbed(summary))

    def _update(self, job_id: int, column: str, value: Any) -> None:
        # ``column`` is always one of this class's literals, never user text.
        sql = f"UPDATE jobs SET {column} = ? WHERE id = ?"  # noqa: S608
        cur = self._db.execute(sql, (value, job_id))
        if cur.rowcount != 1:
            raise UnknownJobError(job_id)

    @translated
    def max_job_id(self) -> int:
        """The highest id ever used (0 when none)."""
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'").fetchone()
        return int(row["seq"]) if row else 0

    @translated
    def reserve_ids_above(self, job_id: int) -> None:
        """Make sure new jobs get ids above ``job_id`` (ids stay unique across runtimes)."""
        if job_id <= self.max_job_id():
            return
        with self._tx() as db:
            if db.execute("SELECT 1 FROM sqlite_sequence WHERE name = 'jobs'").fetchone():
                db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'jobs'", (job_id,))
            else:
                db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('jobs', ?)", (job_id,))

    # job metadata ---------------------------------------------------------------------------

    @translated
    def start_step(self, record: StepRecord) -> None:
        """Record a step that started (replacing an earlier record of the same step)."""
        self._db.execute(
            "INSERT OR REPLACE INTO job_steps "
            "(job_id, idx, name, executor, ref, started_at, gpus) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.job_id,
                record.index,
                record.name,
                record.executor,
                json.dumps(record.ref),
                record.started_at,
                record.gpus,
            ),
        )

    @translated
    def end_step(self, job_id: int, index: int, *, now: float | None = None) -> None:
        """Record that a step is over."""
        self._db.execute(
            "UPDATE job_steps SET ended_at = ? WHERE job_id = ? AND idx = ?",
            (time.time() if now is None else now, job_id, index),
        )

    @translated
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
                gpus=float(row["gpus"]),
            )
            for row in rows
        ]

    @translated
    def step_spans(self, since: float = 0.0) -> list[StepSpan]:
        """Every step that ran after ``since``, with its job's owner, for accounting. A step
        of a job that ended without the step's own end recorded (colabot stopped) ends with
        its job."""
        rows = self._db.execute(
            "SELECT jobs.owner_id, jobs.owner_name, job_steps.started_at, job_steps.gpus, "
            "COALESCE(job_steps.ended_at, jobs.finished_at, "
            "CASE WHEN jobs.state = 'running' THEN NULL ELSE job_steps.started_at END) AS ended "
            "FROM job_steps JOIN jobs ON jobs.id = job_steps.job_id "
            "WHERE COALESCE(job_steps.ended_at, jobs.finished_at) IS NULL "
            "OR COALESCE(job_steps.ended_at, jobs.finished_at) >= ?",
            (since,),
        )
        return [
            StepSpan(
                owner_id=row["owner_id"],
                owner_name=str(row["owner_name"]),
                started_at=float(row["started_at"]),
                ended_at=None if row["ended"] is None else float(row["ended"]),
                gpus=float(row["gpus"]),
            )
            for row in rows
        ]

    @translated
    def set_step_output(self, job_id: int, index: int, offset: int, log_length: int) -> None:
        """Record how many bytes of a step's output are in the job log, and how long the log
        was then."""
        self._db.execute(
            "UPDATE job_steps SET output_offset = ?, log_length = ? WHERE job_id = ? AND idx = ?",
            (offset, log_length, job_id, index),
        )

    @translated
    def set_outputs(self, job_id: int, outputs: Iterable[KeptOutput]) -> None:
        """Record the outputs a finished job left on this machine."""
        with self._tx() as db:
            db.execute("DELETE FROM job_outputs WHERE job_id = ?", (job_id,))
            db.executemany(
                "INSERT INTO job_outputs (job_id, position, role, path) VALUES (?, ?, ?, ?)",
                [(job_id, i, o.role, o.path) for i, o in enumerate(outputs)],
            )

    @translated
    def outputs(self, job_id: int) -> list[KeptOutput]:
        """The outputs a finished job left on this machine, in order."""
        rows = self._db.execute(
            "SELECT role, path FROM job_outputs WHERE job_id = ? ORDER BY position", (job_id,)
        )
        return [KeptOutput(str(row["role"]), str(row["path"])) for row in rows]

    @translated
    def keep_input(self, job_id: int, name: str, location: str) -> None:
        """Record where a copy of an uploaded input was kept off the machine."""
        self._db.execute(
            "INSERT OR REPLACE INTO kept_inputs (job_id, name, location) VALUES (?, ?, ?)",
            (job_id, name, location),
        )

    @translated
    def kept_inputs(self, job_id: int) -> dict[str, str]:
        """Name -> where a copy of each uploaded input of a job is kept."""
        rows = self._db.execute(
            "SELECT name, location FROM kept_inputs WHERE job_id = ? ORDER BY name", (job_id,)
        )
        return {str(row["name"]): str(row["location"]) for row in rows}

    @translated
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

    @translated
    def checkpoint_note(self, job_id: int) -> CheckpointNote | None:
        """When and at what progress a job's checkpoint was last saved."""
        row = self._db.execute("SELECT * FROM checkpoints WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        return CheckpointNote(str(row["location"]), float(row["saved_at"]), str(row["progress"]))

    @translated
    def checkpoint_signature(self, job_id: int) -> list[float] | None:
        """The signature of the checkpoint files last saved for a job."""
        row = self._db.execute(
            "SELECT signature FROM checkpoints WHERE job_id = ?", (job_id,)
        ).fetchone()
        if row is None or row["signature"] is None:
            return None
        return [float(v) for v in json.loads(row["signature"])]

    # quality ---------------------------------------------------------------------------------

    @translated
    def set_quality(self, job_id: int, kind: str, quality: Quality) -> None:
        """Keep how good a training job's models are, with its kind and the fingerprint of
        its training data (replacing what an earlier attempt kept)."""
        self._db.execute(
            "INSERT OR REPLACE INTO job_quality (job_id, kind, data, quality) VALUES (?, ?, ?, ?)",
            (job_id, kind, quality.data, json.dumps(scrubbed(quality.to_dict()))),
        )

    @translated
    def quality(self, job_id: int) -> Quality | None:
        """How good a job's models are, as kept (None: nothing was kept)."""
        row = self._db.execute(
            "SELECT quality FROM job_quality WHERE job_id = ?", (job_id,)
        ).fetchone()
        return None if row is None else _quality_from(row["quality"])

    @translated
    def earlier_on_same_data(self, job_id: int, kind: str, data: str) -> tuple[int, Quality] | None:
        """The newest succeeded training job before ``job_id`` of the same kind, trained on
        the same data (the same non-empty fingerprint), with its quality; None when there is
        none."""
        if not data:
            return None
        rows = self._db.execute(
            "SELECT q.job_id, q.quality, j.spec FROM job_quality q JOIN jobs j ON j.id = q.job_id "
            "WHERE q.kind = ? AND q.data = ? AND q.job_id < ? AND j.state = ? "
            "ORDER BY q.job_id DESC",
            (kind, data, job_id, JobState.SUCCEEDED.value),
        )
        for row in rows:
            spec = JobSpec.from_dict(json.loads(row["spec"]))
            if spec.action is Action.TRAIN:
                return int(row["job_id"]), _quality_from(row["quality"])
        return None


def _quality_from(raw: str) -> Quality:
    """A kept quality record; one that cannot be read is an empty Quality (nothing to show)."""
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return Quality()
    return Quality.from_dict(data) if isinstance(data, dict) else Quality()
