"""The job engine: submit, cancel, resume and list jobs; a worker loop that runs them.

Each job runs as a sequence of subprocess steps planned by its kind. Nothing a job does can
raise out of the loop: every failure becomes a failed job with a reason and the last lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shlex
import shutil
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import workers
from workers.archives import zip_folder
from workers.containment import find_cgroup_root, processes_marked
from workers.disk import DiskGuard, trim_log
from workers.errors import ColabotError, JobStateError, SpecError, StepFailedError
from workers.events import (
    Cancelled,
    Failed,
    FileReady,
    Interrupted,
    Notice,
    Payload,
    Resumed,
    Started,
    Succeeded,
)
from workers.inputs import InputResolver, upload_source
from workers.jobs import (
    FINISHED_STATES,
    Action,
    Job,
    JobSpec,
    JobState,
    KeptOutput,
    Link,
    Progress,
    StepRecord,
)
from workers.kinds.base import JobContext, JobKind, Outcome, Output, Step
from workers.kinds.registry import KindRegistry
from workers.logfile import tail_lines
from workers.process import Grace, ProcessResult, ProcessRun
from workers.results.base import ResultsBackend
from workers.store import INTERRUPTED_REASON, Store

log = logging.getLogger(__name__)

PROGRESS_FLUSH_S = 1.0
TAIL_FOR_EVENTS = 12
# Environment variables a job must never see: chat and cloud credentials.
SECRET_ENV_PREFIXES = ("COLABOT_", "TELEGRAM_", "GOOGLE_APPLICATION_CREDENTIALS")


@dataclass(frozen=True)
class EngineSettings:
    """How the engine runs jobs."""

    data_dir: Path
    max_parallel_jobs: int = 1
    input_roots: tuple[Path, ...] = ()
    default_timeout_s: float | None = None
    grace: Grace = field(default_factory=Grace)
    python: str = sys.executable
    send_files_under_bytes: int = 45 * 1024 * 1024
    min_free_disk_mb: float = 0.0
    use_cgroups: bool = True

    @property
    def jobs_dir(self) -> Path:
        """Where each job's folder lives."""
        return self.data_dir / "jobs"

    @property
    def cache_dir(self) -> Path:
        """Where fetched inputs are cached."""
        return self.data_dir / "cache" / "inputs"


@dataclass
class JobTimings:
    """When a job passed each phase (seconds since the epoch); for measuring overhead."""

    submitted: float | None = None
    spawned: float | None = None
    exited: float | None = None
    recorded: float | None = None


@dataclass
class _Active:
    """What the engine holds for a job while it runs."""

    task: asyncio.Task[None]
    process: ProcessRun | None = None
    ctx: JobContext | None = None
    kind: JobKind | None = None
    cancel_requested: bool = False
    step: str = ""
    last_flush: float = 0.0


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """The environment for a job step: ours minus secrets, plus the step's own settings."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(SECRET_ENV_PREFIXES)
    }
    source_root = str(Path(workers.__file__).resolve().parent.parent)
    paths = [source_root, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Engine:
    """Runs jobs from the store as subprocesses, up to ``max_parallel_jobs`` at once."""

    def __init__(
        self,
        settings: EngineSettings,
        store: Store,
        registry: KindRegistry,
        *,
        results: ResultsBackend | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.results = results
        self.inputs = InputResolver(
            settings.input_roots,
            self._job_outputs,
            colabot_roots=(settings.jobs_dir, settings.cache_dir),
        )
        self.disk = DiskGuard(settings.data_dir, settings.min_free_disk_mb)
        self._cgroup_root = find_cgroup_root() if settings.use_cgroups else None
        self.timings: OrderedDict[int, JobTimings] = OrderedDict()
        self._active: dict[int, _Active] = {}
        self._live: dict[int, Progress] = {}
        self._wake = asyncio.Event()
        self._events = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._event_listeners: list[Callable[[], None]] = []
        self._state_listeners: list[Callable[[Job], None]] = []
        self._progress_listeners: list[Callable[[int, Progress], None]] = []
        self._before_run: list[Callable[[Job, Path], Awaitable[None]]] = []

    # lifecycle ------------------------------------------------------------------------------

    async def start(self) -> list[Job]:
        """Mark jobs a previous run left running as interrupted, then start the worker loop.

        Returns the interrupted jobs.
        """
        interrupted = self.store.interrupt_running()
        for job in interrupted:
            self._kill_leftovers(job.id)
        self.disk.keep_reserve()
        self._stopping = False
        self._loop_task = asyncio.create_task(self._worker_loop(), name="colabot-worker-loop")
        if interrupted:
            self._notify_events()
        return interrupted

    async def stop(self) -> None:
        """Stop the loop; running jobs are stopped and marked interrupted (resumable)."""
        self._stopping = True
        self._wake.set()
        actives = dict(self._active)
        for active in actives.values():
            if active.process is not None:
                active.process.cancel()
            else:
                active.task.cancel()
        await asyncio.gather(*(a.task for a in actives.values()), return_exceptions=True)
        for job_id in actives:
            self._mark_interrupted(job_id)
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None

    def _mark_interrupted(self, job_id: int) -> None:
        job = self.store.find_job(job_id)
        if job is not None and job.state is JobState.RUNNING:
            self._set_state(
                job_id,
                JobState.INTERRUPTED,
                error=INTERRUPTED_REASON,
                event=Interrupted(INTERRUPTED_REASON),
            )

    def _kill_leftovers(self, job_id: int) -> None:
        """Stop processes a crashed colabot left behind for this job, found by their mark."""
        for step in self.store.open_steps(job_id):
            mark = step.ref.get("mark")
            if isinstance(mark, str) and mark:
                for process in processes_marked(mark):
                    with contextlib.suppress(Exception):
                        process.kill()
                        log.info("stopped a leftover process of job %s", job_id)
            self.store.end_step(job_id, step.index)

    # listeners ------------------------------------------------------------------------------

    def on_events(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever new outbox events are stored."""
        self._event_listeners.append(callback)

    def on_state(self, callback: Callable[[Job], None]) -> None:
        """Call ``callback`` with the job after every state change."""
        self._state_listeners.append(callback)

    def before_run(self, callback: Callable[[Job, Path], Awaitable[None]]) -> None:
        """Await ``callback(job, workdir)`` when a job starts, before its inputs are resolved."""
        self._before_run.append(callback)

    def checkpoint_of(self, job_id: int) -> Path | None:
        """The newest checkpoint of a running job, as its kind finds it."""
        active = self._active.get(job_id)
        if active is None or active.ctx is None or active.kind is None:
            return None
        return active.kind.checkpoint(active.ctx)

    def on_progress(self, callback: Callable[[int, Progress], None]) -> None:
        """Call ``callback`` with (job id, progress) whenever a running job reports progress."""
        self._progress_listeners.append(callback)

    def _notify_events(self) -> None:
        self._events.set()
        for callback in self._event_listeners:
            with contextlib.suppress(Exception):
                callback()

    def _set_state(
        self,
        job_id: int,
        target: JobState,
        *,
        error: str | None = None,
        event: Payload | None = None,
    ) -> Job:
        job = self.store.transition(job_id, target, error=error, event=event)
        if event is not None:
            self._notify_events()
        self._announce(job)
        return job

    def _announce(self, job: Job) -> None:
        for callback in self._state_listeners:
            with contextlib.suppress(Exception):
                callback(job)

    def notice(self, job_id: int | None, text: str) -> None:
        """Record a plain-text notice for a person to read (delivered through the outbox)."""
        self.post(job_id, Notice(text))

    def post(self, job_id: int | None, payload: Payload) -> None:
        """Record an event for the chat side to deliver (about a job, or the runtime)."""
        self.store.add_event(job_id, payload)
        self._notify_events()

    # requests -------------------------------------------------------------------------------

    def check(self, spec: JobSpec, upload_names: dict[str, str] | None = None) -> JobSpec:
        """Validate a request fully (kind, action, inputs, params) without submitting it.

        ``upload_names`` maps input slots to the names of files that will be delivered with
        the request (a document sent in the chat), so they are checked as that input.
        """
        return self._validate(self._with_uploads(spec, upload_names or {}))

    def _with_uploads(self, spec: JobSpec, upload_names: dict[str, str]) -> JobSpec:
        """The spec with upload slots filled by colabot's own markers.

        Only colabot writes ``upload:`` markers: a spec that holds one already came from
        outside (typed in the chat) and is refused, since it could name any file.
        """
        for slot, text in spec.inputs.items():
            if any(part.strip().lower().startswith("upload:") for part in text.split(",")):
                raise SpecError(
                    f"inputs.{slot}",
                    "upload: is not a way to name an input; send the file in the chat instead",
                )
        uploads = {slot: upload_source(name) for slot, name in upload_names.items()}
        return JobSpec(spec.kind, spec.action, {**spec.inputs, **uploads}, spec.params)

    def _validate(self, spec: JobSpec) -> JobSpec:
        for name, value in [*spec.inputs.items(), *spec.params.items()]:
            if "\x00" in str(value):
                field_name = f"inputs.{name}" if name in spec.inputs else f"params.{name}"
                raise SpecError(field_name, "holds a NUL character, which no file or value can")
        clean = self.registry.validate(spec)
        self.inputs.check(clean, lambda job_id: self.store.find_job(job_id) is not None)
        return clean

    def submit(
        self,
        spec: JobSpec,
        origin: dict[str, Any] | None = None,
        *,
        uploads: dict[str, Path] | None = None,
    ) -> Job:
        """Validate and queue a job; raise SpecError naming the bad field, or DiskSpaceError
        when the data folder is too full to start one.

        ``uploads`` maps input slots to files delivered with the request; they are moved into
        the job's folder.
        """
        submitted = time.time()
        uploads = uploads or {}
        clean = self.check(spec, {slot: path.name for slot, path in uploads.items()})
        self.disk.check_room()
        job = self.store.add_job(clean, origin, now=submitted)
        for path in uploads.values():
            target = self.workdir(job.id) / "inputs" / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), target)
        self._timing(job.id).submitted = submitted
        self._announce(job)
        self._notify_events()
        self._wake.set()
        return job

    async def cancel(self, job_id: int) -> Job:
        """Cancel a queued or running job; raise UnknownJobError or JobStateError."""
        job = self.store.get_job(job_id)
        if not job.can_cancel:
            raise JobStateError(job_id, job.state.value, "cancel")
        active = self._active.get(job_id)
        if job.state is not JobState.RUNNING:
            return self._set_state(job_id, JobState.CANCELLED, event=Cancelled())
        if active is None:
            raise JobStateError(job_id, job.state.value, "cancel")
        active.cancel_requested = True
        if active.process is not None:
            active.process.cancel()
        else:
            active.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(active.task)
        return self.store.get_job(job_id)

    def resume(self, job_id: int) -> Job:
        """Queue an interrupted or failed job again; training continues from its checkpoint."""
        job = self.store.get_job(job_id)
        if not job.can_resume:
            raise JobStateError(job_id, job.state.value, "resume")
        job = self._set_state(job_id, JobState.QUEUED, event=Resumed())
        self._wake.set()
        return job

    def job(self, job_id: int) -> Job:
        """A job with its live progress; raise UnknownJobError."""
        return self._with_live(self.store.get_job(job_id))

    def jobs(self, limit: int = 20) -> list[Job]:
        """Recent jobs, newest first, with live progress."""
        return [self._with_live(job) for job in self.store.list_jobs(limit=limit)]

    def running_jobs(self) -> list[Job]:
        """Jobs running now."""
        return [self._with_live(j) for j in self.store.list_jobs(states=[JobState.RUNNING])]

    def queued_jobs(self) -> list[Job]:
        """Jobs waiting to run, oldest first."""
        return list(reversed(self.store.list_jobs(states=[JobState.QUEUED])))

    def current_step(self, job_id: int) -> str:
        """The name of the step a running job is in, or ''."""
        active = self._active.get(job_id)
        return active.step if active else ""

    def _with_live(self, job: Job) -> Job:
        live = self._live.get(job.id)
        if live is None or job.state is not JobState.RUNNING:
            return job
        return dataclasses.replace(job, progress=live)

    def workdir(self, job_id: int) -> Path:
        """The job's folder."""
        return self.settings.jobs_dir / str(job_id)

    def log_path(self, job_id: int) -> Path:
        """The job's log file."""
        return self.workdir(job_id) / "job.log"

    def log_tail(self, job_id: int, lines: int) -> list[str]:
        """The last lines of a job's log; raise UnknownJobError."""
        self.store.get_job(job_id)
        return tail_lines(self.log_path(job_id), lines)

    def _job_outputs(self, job_id: int, slot: str) -> list[Path]:
        wanted = "model" if slot == "model" else "predictions"
        chosen = [Path(o.path) for o in self.store.outputs(job_id) if o.role == wanted]
        return [p for p in chosen if p.exists()]

    def _timing(self, job_id: int) -> JobTimings:
        timing = self.timings.get(job_id)
        if timing is None:
            timing = self.timings[job_id] = JobTimings()
            while len(self.timings) > 1000:
                self.timings.popitem(last=False)
        return timing

    # the loop -------------------------------------------------------------------------------

    async def _worker_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                self._start_ready_jobs()
            except Exception:
                log.exception("the worker loop hit an error; it keeps going")
            await self._wake.wait()

    def _start_ready_jobs(self) -> None:
        while len(self._active) < self.settings.max_parallel_jobs and not self._stopping:
            job = self.store.next_queued(exclude=self._active)
            if job is None:
                return
            task = asyncio.create_task(self._run_job(job.id), name=f"colabot-job-{job.id}")
            self._active[job.id] = _Active(task=task)

    async def _run_job(self, job_id: int) -> None:
        try:
            await self._execute(job_id)
        except asyncio.CancelledError:
            active = self._active.get(job_id)
            if active is not None and active.cancel_requested:
                self._finish(job_id, JobState.CANCELLED, Cancelled())
            elif not self._stopping:
                raise
        except Exception as exc:
            log.exception("job %s hit an internal error", job_id)
            self._finish_failed(job_id, f"internal error: {type(exc).__name__}: {exc}", [])
        finally:
            self._active.pop(job_id, None)
            self._live.pop(job_id, None)
            self._wake.set()

    def _finish(self, job_id: int, state: JobState, event: Payload) -> None:
        job = self.store.find_job(job_id)
        if job is None or job.state in FINISHED_STATES:
            return
        live = self._live.get(job_id)
        if live is not None:
            self.store.set_progress(job_id, live)
        error = event.reason if isinstance(event, Failed) else None
        self._set_state(job_id, state, error=error, event=event)
        self._timing(job_id).recorded = time.time()

    def _finish_failed(self, job_id: int, reason: str, tail: list[str], step: str = "") -> None:
        event = Failed(reason=reason, tail=tail[-TAIL_FOR_EVENTS:], step=step)
        self._finish(job_id, JobState.FAILED, event)

    async def _execute(self, job_id: int) -> None:
        job = self.store.get_job(job_id)
        kind = self.registry.get(job.spec.kind)
        resuming = job.attempt > 1 and job.spec.action is Action.TRAIN
        job = self._set_state(job_id, JobState.RUNNING, event=Started(job.attempt))
        workdir = self.workdir(job_id)
        workdir.mkdir(parents=True, exist_ok=True)
        ctx = JobContext(
            job=job,
            workdir=workdir,
            inputs={},
            python=self.settings.python,
            notify=lambda text: self.notice(job_id, text),
            input_roots=self.settings.input_roots,
        )
        self._active[job_id].ctx = ctx
        self._active[job_id].kind = kind
        try:
            for prepare in self._before_run:
                await prepare(job, workdir)
            ctx.inputs = await self.inputs.resolve(
                job.spec, workdir, lambda progress: self._progress(job_id, progress)
            )
            if resuming:
                ctx.resume_from = await self._resume_point(job, kind, ctx)
            for index, step in enumerate(_guarded(kind.steps(ctx))):
                result = await self._run_step(job_id, ctx, step, index)
                if result.cancelled:
                    if self._active[job_id].cancel_requested:
                        self._finish(job_id, JobState.CANCELLED, Cancelled())
                    return
                if not result.ok:
                    explained = (
                        None if result.disk_full else kind.explain_failure(ctx, step, result.tail)
                    )
                    reason = explained or result.reason
                    self._finish_failed(job_id, reason or "failed", result.tail, step.name)
                    return
            outcome = kind.collect(ctx)
            await self._succeed(job_id, ctx, outcome)
        except ColabotError as exc:
            tail = exc.tail if isinstance(exc, StepFailedError) else []
            self._finish_failed(job_id, str(exc), tail)

    async def _resume_point(self, job: Job, kind: JobKind, ctx: JobContext) -> Path | None:
        local = kind.checkpoint(ctx)
        if local is not None:
            return local
        if job.checkpoint and self.results is not None:
            dest = ctx.workdir / "restored"
            return await asyncio.to_thread(
                self.results.fetch_checkpoint, job.id, job.checkpoint, dest
            )
        return None

    async def _run_step(
        self, job_id: int, ctx: JobContext, step: Step, index: int
    ) -> ProcessResult:
        active = self._active[job_id]
        active.step = step.name
        env = child_environment({**step.env, "COLABOT_JOB_ID": str(job_id)})
        log_path = self.log_path(job_id)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as handle:
            handle.write(
                f"\n=== colabot step: {step.name} ===\n$ {shlex.join(step.argv)}\n".encode()
            )
        for folder in (ctx.outputs_dir, ctx.scratch_dir):
            folder.mkdir(parents=True, exist_ok=True)

        def on_line(source: str, line: str) -> None:
            if step.parser is None:
                return
            progress = step.parser(source, line)
            if progress is not None:
                self._progress(job_id, progress)

        timeout = ctx.param("timeout")
        run = ProcessRun(
            step.argv,
            log_path=log_path,
            cwd=step.cwd or ctx.scratch_dir,
            env=env,
            on_line=on_line,
            watch=step.watch,
            timeout_s=float(timeout) * 60 if timeout else self.settings.default_timeout_s,
            grace=self.settings.grace,
            cgroup_root=self._cgroup_root,
            on_disk_full=self.disk.release_reserve,
        )

        def on_start(pid: int) -> None:
            self._timing(job_id).spawned = time.time()
            ref = {"pid": pid, "mark": run.processes.mark}
            self.store.start_step(StepRecord(job_id, index, step.name, "local", ref, time.time()))

        run.on_start = on_start
        active.process = run
        try:
            result = await run.run()
        finally:
            active.process = None
            self.store.end_step(job_id, index)
        self._timing(job_id).exited = result.ended_at or time.time()
        if result.disk_full or (not result.ok and self.disk.free_mb() < 1.0):
            reason = self.disk.full_reason()
            if result.disk_full:
                # This job's output filled the disk: cut its log so that others can go on.
                trim_log(log_path)
            result = dataclasses.replace(result, reason=reason, disk_full=True)
        return result

    def _progress(self, job_id: int, progress: Progress) -> None:
        if progress.updated_at == 0.0:
            progress = dataclasses.replace(progress, updated_at=time.time())
        self._live[job_id] = progress
        for callback in self._progress_listeners:
            with contextlib.suppress(Exception):
                callback(job_id, progress)
        active = self._active.get(job_id)
        if active is not None and progress.updated_at - active.last_flush >= PROGRESS_FLUSH_S:
            active.last_flush = progress.updated_at
            self.store.set_progress(job_id, progress)

    async def _succeed(self, job_id: int, ctx: JobContext, outcome: Outcome) -> None:
        present = [o for o in outcome.outputs if o.path.exists()]
        self.store.set_outputs(job_id, [KeptOutput(o.role, str(o.path)) for o in present])
        packed = await asyncio.to_thread(_package_outputs, ctx.workdir, present)
        links: list[Link] = []
        if self.results is not None and packed:
            try:
                links = await self._publish(job_id, packed)
            except ColabotError as exc:
                # The work is done and on disk; failing the job would hide that.
                self.notice(
                    job_id,
                    f"The results could not be saved to {self.results.name}: {exc}. "
                    f"They are still on this machine in {ctx.outputs_dir}.",
                )
                links = [Link(p.label, str(p.output.path)) for p in packed]
            self.store.set_links(job_id, links)
        self.store.set_summary(job_id, outcome.summary)
        event = Succeeded(outcome.summary, links, dict(outcome.metrics))
        self._finish(job_id, JobState.SUCCEEDED, event)
        for item in packed:
            self._maybe_send_file(job_id, item)
        self._notify_events()

    async def _publish(self, job_id: int, packed: list[Packed]) -> list[Link]:
        assert self.results is not None
        backend = self.results
        loop = asyncio.get_running_loop()
        files = [(p.path, p.label) for p in packed]
        log = self.log_path(job_id)
        if log.exists():
            files.append((log, "log"))

        def report(name: str, sent: int, total: int) -> None:
            fraction = sent / total if total else 1.0
            progress = Progress(fraction=fraction, message=f"uploading {name}: {fraction:.0%}")
            loop.call_soon_threadsafe(self._progress, job_id, progress)

        # Upload progress is shown while it lasts; the job keeps its own progress after.
        kept = self._live.get(job_id)
        self._progress(job_id, Progress(message=f"saving results to {backend.name}"))
        try:
            return await asyncio.to_thread(backend.publish, job_id, files, report)
        finally:
            if kept is not None:
                self._live[job_id] = kept

    def _maybe_send_file(self, job_id: int, item: Packed) -> None:
        output = item.output
        if not output.send or output.role == "checkpoint":
            return
        size = item.path.stat().st_size
        if output.send_as_photo or size <= self.settings.send_files_under_bytes:
            self.store.add_event(
                job_id, FileReady(str(item.path), item.label, output.send_as_photo)
            )


@dataclass(frozen=True)
class Packed:
    """An output as one file to keep: a folder zipped, a file as it is (or linked under a
    unique name when another output has the same name)."""

    output: Output
    path: Path
    label: str


def _package_outputs(workdir: Path, outputs: list[Output]) -> list[Packed]:
    """Zip folders (a model is a folder) so each output is one file with a unique name."""
    packed_dir = workdir / "packed"
    if packed_dir.exists():
        shutil.rmtree(packed_dir)
    used: set[str] = {"job.log"}
    packed: list[Packed] = []
    for output in outputs:
        label = output.label or output.path.name
        name = output.path.name + (".zip" if output.path.is_dir() else "")
        unique = _unique(name, used)
        if output.path.is_dir():
            path = zip_folder(output.path, packed_dir / unique)
        elif unique != name:
            packed_dir.mkdir(parents=True, exist_ok=True)
            path = packed_dir / unique
            shutil.copy2(output.path, path)
        else:
            path = output.path
        packed.append(Packed(output, path, label))
    return packed


def _unique(name: str, used: set[str]) -> str:
    """``name``, or ``stem-2.ext``, ``stem-3.ext``... so that names never collide."""
    candidate = name
    stem, dot, suffix = name.partition(".")
    count = 1
    while candidate in used:
        count += 1
        candidate = f"{stem}-{count}{dot}{suffix}"
    used.add(candidate)
    return candidate


def _guarded(steps: Iterator[Step]) -> Iterator[Step]:
    """Yield a kind's steps, turning its planning bugs into clear job failures."""
    while True:
        try:
            step = next(steps)
        except StopIteration:
            return
        except ColabotError:
            raise
        except Exception as exc:
            raise StepFailedError("planning", f"{type(exc).__name__}: {exc}") from exc
        yield step
