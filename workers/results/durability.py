"""Keeping jobs alive across runtimes: checkpoint sync, kept uploads, the state snapshot, and
carrying lost jobs over to a new runtime that shares the results backend.

The snapshot is small JSON: what is needed to resume each job (spec, state, progress,
checkpoint location, kept inputs). It is saved after every state change (debounced), after a
checkpoint sync, and on demand at the last limit warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from workers.engine import Engine
from workers.errors import ColabotError
from workers.jobs import CheckpointNote, Job, JobSpec, JobState, Link, Progress
from workers.results.base import ResultsBackend
from workers.safety.names import is_plain_name
from workers.safety.paths import copy_folder
from workers.sharing.owners import Owner

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1
LOST_STATES = frozenset({JobState.RUNNING, JobState.QUEUED, JobState.INTERRUPTED})


@dataclass(frozen=True)
class JobRecord:
    """One job as the snapshot keeps it."""

    job: Job
    kept_inputs: dict[str, str] = field(default_factory=dict)
    checkpoint_note: CheckpointNote | None = None


@dataclass(frozen=True)
class Snapshot:
    """The state a new runtime needs to carry on."""

    saved_at: float
    jobs: list[JobRecord]

    def to_bytes(self) -> bytes:
        """Serialise as JSON."""
        return json.dumps(
            {
                "version": SNAPSHOT_VERSION,
                "saved_at": self.saved_at,
                "jobs": [_record_to_dict(r) for r in self.jobs],
            },
            indent=1,
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Snapshot:
        """Parse; raise ValueError for anything that is not a snapshot this colabot wrote."""
        try:
            raw = json.loads(data)
            if raw.get("version") != SNAPSHOT_VERSION:
                raise ValueError(f"unknown snapshot version {raw.get('version')!r}")
            return cls(
                saved_at=float(raw["saved_at"]),
                jobs=[_record_from_dict(r) for r in raw["jobs"]],
            )
        except (
            KeyError,
            TypeError,
            AttributeError,
            UnicodeDecodeError,
            json.JSONDecodeError,
        ) as exc:
            raise ValueError(f"not a colabot state snapshot ({exc})") from None


def _record_to_dict(record: JobRecord) -> dict[str, Any]:
    job = record.job
    return {
        "id": job.id,
        "spec": job.spec.to_dict(),
        "state": job.state.value,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "progress": job.progress.to_dict(),
        "links": [link.to_dict() for link in job.links],
        "error": job.error,
        "origin": job.origin,
        "attempt": job.attempt,
        "checkpoint": job.checkpoint,
        "summary": job.summary,
        "owner": asdict(job.owner) if job.owner is not None else None,
        "kept_inputs": record.kept_inputs,
        "checkpoint_note": asdict(record.checkpoint_note) if record.checkpoint_note else None,
    }


def _record_from_dict(raw: dict[str, Any]) -> JobRecord:
    job = Job(
        id=int(raw["id"]),
        spec=JobSpec.from_dict(raw["spec"]),
        state=JobState(raw["state"]),
        created_at=float(raw["created_at"]),
        started_at=raw.get("started_at"),
        finished_at=raw.get("finished_at"),
        progress=Progress.from_dict(raw.get("progress")),
        links=tuple(Link.from_dict(d) for d in raw.get("links", [])),
        error=raw.get("error"),
        origin=dict(raw.get("origin") or {}),
        attempt=int(raw.get("attempt", 1)),
        checkpoint=raw.get("checkpoint"),
        summary=str(raw.get("summary", "")),
        owner=_owner(raw.get("owner")),
    )
    note = raw.get("checkpoint_note")
    return JobRecord(
        job=job,
        kept_inputs={str(k): str(v) for k, v in (raw.get("kept_inputs") or {}).items()},
        checkpoint_note=CheckpointNote(**note) if note else None,
    )


def _owner(raw: Any) -> Owner | None:
    """A job's owner as the snapshot kept it (None for a snapshot from before owners)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("user_id"), int):
        return None
    return Owner(int(raw["user_id"]), str(raw.get("name", "")))


def lost_jobs(snapshot: Snapshot, known: Callable[[int], bool]) -> list[JobRecord]:
    """Jobs the previous runtime was running or holding that this store does not know."""
    return [r for r in snapshot.jobs if r.job.state in LOST_STATES and not known(r.job.id)]


def carried_over(record: JobRecord, stopped_at: float) -> Job:
    """The job as this runtime records it: interrupted if it was running or waiting."""
    job = record.job
    if job.state in LOST_STATES:
        return dataclasses.replace(
            job,
            state=JobState.INTERRUPTED,
            finished_at=stopped_at,
            error="the previous runtime stopped while the job was running or waiting",
        )
    return job


class Keeper:
    """Saves what jobs need off the machine, and brings lost jobs back on a new runtime."""

    def __init__(
        self,
        engine: Engine,
        results: ResultsBackend,
        *,
        snapshot_delay_s: float = 2.0,
    ) -> None:
        self.engine = engine
        self.store = engine.store
        self.results = results
        self.snapshot_delay_s = snapshot_delay_s
        self.last_sync: float | None = None
        self.last_snapshot: float | None = None
        self._pending_snapshot: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sync_lock = asyncio.Lock()
        self._snapshot_lock = asyncio.Lock()
        engine.on_state(self._state_changed)
        engine.before_run(self.restore_inputs)

    # snapshot ---------------------------------------------------------------------------------

    def build(self, now: float | None = None) -> Snapshot:
        """The snapshot of every job this store knows."""
        records = []
        for job in self.engine.jobs(limit=500):
            records.append(
                JobRecord(
                    job=job,
                    kept_inputs=self.store.kept_inputs(job.id),
                    checkpoint_note=self.store.checkpoint_note(job.id),
                )
            )
        return Snapshot(saved_at=time.time() if now is None else now, jobs=records)

    async def snapshot_now(self) -> None:
        """Save the snapshot to the results backend at once."""
        if self._pending_snapshot is not None:
            self._pending_snapshot.cancel()
            self._pending_snapshot = None
        async with self._snapshot_lock:
            data = self.build().to_bytes()
            try:
                await asyncio.to_thread(self.results.save_snapshot, data)
                self.last_snapshot = time.time()
            except ColabotError as exc:
                log.warning("could not save the state snapshot: %s", exc)

    def schedule_snapshot(self) -> None:
        """Save the snapshot soon, once a burst of changes has settled."""
        if self._pending_snapshot is not None:
            return
        loop = asyncio.get_running_loop()
        self._pending_snapshot = loop.call_later(self.snapshot_delay_s, self._fire_snapshot)

    def _fire_snapshot(self) -> None:
        self._pending_snapshot = None
        self._spawn(self.snapshot_now())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _state_changed(self, job: Job) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        if job.state is JobState.QUEUED and job.attempt == 1 and job.spec.uploads:
            self._spawn(self.keep_uploads(job.id, dict(job.spec.uploads)))
        self.schedule_snapshot()

    async def stop(self) -> None:
        """Save a final snapshot and wait for background saves."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.snapshot_now()

    # uploads ----------------------------------------------------------------------------------

    async def keep_uploads(self, job_id: int, uploads: dict[str, str]) -> None:
        """Copy files sent in the chat to the results backend: nothing else can bring them back."""
        kept = self.store.kept_inputs(job_id)
        inputs = self.engine.workdir(job_id) / "inputs"
        for name in uploads.values():
            path = inputs / name
            if name in kept or not path.exists():
                continue
            try:
                location = await asyncio.to_thread(self.results.save_inputs, job_id, path)
            except ColabotError as exc:
                self.engine.notice(job_id, f"could not keep a copy of {name}: {exc}")
                continue
            self.store.keep_input(job_id, name, location)
        self.schedule_snapshot()

    async def restore_inputs(self, job: Job, workdir: Path) -> None:
        """Before a job runs, bring back kept uploads this machine does not have."""
        for name, location in self.store.kept_inputs(job.id).items():
            if not is_plain_name(name):
                log.warning("ignoring a kept input of job %s with an unsafe name", job.id)
                continue
            target = workdir / "inputs" / name
            if target.exists():
                continue
            await asyncio.to_thread(self.results.fetch_inputs, job.id, location, workdir / "inputs")

    # checkpoints ------------------------------------------------------------------------------

    async def sync_checkpoints(self) -> list[int]:
        """Copy each running job's newest checkpoint off the machine if it changed.

        Returns the ids of the jobs whose checkpoint was saved.
        """
        saved = []
        async with self._sync_lock:
            for job in self.engine.running_jobs():
                try:
                    if await self._sync_newest(job):
                        saved.append(job.id)
                except (ColabotError, OSError) as exc:
                    log.warning("checkpoint of job %s not saved: %s", job.id, exc)
            self.last_sync = time.time()
        if saved:
            self.schedule_snapshot()
        return saved

    async def _sync_newest(self, job: Job) -> bool:
        known = self.store.checkpoint_signature(job.id)
        copied = await asyncio.to_thread(
            _copy_newest,
            lambda: self.engine.checkpoint_of(job.id),
            self.engine.workdir(job.id) / "sync",
            known,
        )
        return copied is not None and await self._keep_copy(job, *copied)

    async def _keep_copy(self, job: Job, stable: Path, signature: list[float]) -> bool:
        try:
            location = await asyncio.to_thread(self.results.sync_checkpoint, job.id, stable)
        finally:
            await asyncio.to_thread(_remove, stable)
        self.store.set_checkpoint(job.id, location)
        live = self.engine.job(job.id).progress.message
        note = CheckpointNote(location=location, saved_at=time.time(), progress=live)
        self.store.save_checkpoint_note(job.id, note, signature)
        return True

    def checkpoint_note(self, job_id: int) -> CheckpointNote | None:
        """When and at what progress a job's checkpoint was last saved."""
        return self.store.checkpoint_note(job_id)

    # a new runtime ----------------------------------------------------------------------------

    async def carry_over(self) -> tuple[Snapshot | None, list[JobRecord]]:
        """Read the previous runtime's snapshot; import its jobs this store lacks.

        Returns the snapshot (None when there is none or it cannot be read) and the lost jobs
        (running or waiting when that runtime stopped), now recorded as interrupted.
        """
        try:
            data = await asyncio.to_thread(self.results.load_snapshot)
        except ColabotError as exc:
            log.warning("could not read the previous state snapshot: %s", exc)
            return None, []
        if data is None:
            return None, []
        try:
            snapshot = Snapshot.from_bytes(data)
        except ValueError as exc:
            log.warning("ignoring the state snapshot: %s", exc)
            return None, []
        lost = lost_jobs(snapshot, lambda job_id: self.store.find_job(job_id) is not None)
        for record in snapshot.jobs:
            if self.store.find_job(record.job.id) is not None:
                continue
            self.store.import_job(carried_over(record, snapshot.saved_at))
            for name, location in record.kept_inputs.items():
                self.store.keep_input(record.job.id, name, location)
            if record.checkpoint_note is not None:
                self.store.save_checkpoint_note(record.job.id, record.checkpoint_note)
        return snapshot, lost


_COPY_ATTEMPTS = 5
_COPY_CHUNK = 8 * 1024 * 1024


def _folder_signature(path: Path) -> list[float]:
    """Total size and newest modification time of the files in a checkpoint folder."""
    stats = [p.stat() for p in path.rglob("*") if p.is_file()]
    return [sum(s.st_size for s in stats), max((s.st_mtime for s in stats), default=0.0)]


def _handle_signature(handle: BinaryIO) -> list[float]:
    """Size and modification time of an open checkpoint file."""
    stat = os.fstat(handle.fileno())
    return [stat.st_size, stat.st_mtime]


class _ChangedDuringCopy(Exception):
    """The trainer wrote to a checkpoint while it was being copied."""


def _copy_newest(
    find: Callable[[], Path | None], folder: Path, known: list[float] | None
) -> tuple[Path, list[float]] | None:
    """Copy the newest checkpoint ``find`` names, with its signature.

    None when there is none, it is unchanged since ``known``, or it kept changing. Trainers
    rotate checkpoints, so the one found can vanish before it is opened: then look again.
    """
    for attempt in range(_COPY_ATTEMPTS):
        path = find()
        if path is None:
            return None
        try:
            return _stable_copy(path, folder, known)
        except _ChangedDuringCopy:
            continue
        except FileNotFoundError:
            if attempt == _COPY_ATTEMPTS - 1:
                raise
    return None


def _stable_copy(
    path: Path, folder: Path, known: list[float] | None
) -> tuple[Path, list[float]] | None:
    """Copy a checkpoint the trainer may be writing, with its signature; None if it is ``known``.

    A file is read through one open handle, so a trainer that replaces or deletes it meanwhile
    cannot pull it away half-copied. Raises ``_ChangedDuringCopy`` if it changed all the same.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    _remove(target)
    if path.is_dir():
        before = _folder_signature(path)
        if before == known:
            return None
        copy_folder(path, target)
        after = _folder_signature(path)
    else:
        with path.open("rb") as source:
            before = _handle_signature(source)
            if before == known:
                return None
            with target.open("wb") as sink:
                shutil.copyfileobj(source, sink, _COPY_CHUNK)
            after = _handle_signature(source)
    if after != before:
        _remove(target)
        raise _ChangedDuringCopy(path)
    return target, before


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
