"""Running one job: its inputs resolved, its kind's steps run one by one through the
executor, a failure explained, its outputs collected, packed and published.

Nothing a job does can raise out of here: every failure becomes a failed job with a reason
and the last lines of its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shlex
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from workers.errors import ColabotError, SpecError, StepFailedError, StopEarlyError
from workers.events import Cancelled, Failed, Interrupted, Notice, Payload, Started, Succeeded
from workers.executors.base import Executor, Grace, Launch, Placement, StepHandle
from workers.inputs.resolve import InputResolver
from workers.jobs import Action, Job, JobSpec, JobState, KeptOutput, Link, Progress, StepRecord
from workers.kinds.base import (
    LIVE_SOURCE,
    STOPPED_EARLY,
    JobContext,
    JobKind,
    Outcome,
    Output,
    Step,
)
from workers.live import LiveChannel
from workers.outputs import Packed, files_for_chat, inside_job, package_outputs, publish
from workers.quality import comparison
from workers.results.base import ResultsBackend
from workers.safety.environment import step_environment
from workers.safety.files import open_to_change, touch_private
from workers.safety.names import label
from workers.sharing.quotas import QuotaSettings
from workers.steprun import StepResult, StepRun, Verdict, open_job_log, step_outcome
from workers.store.database import Store
from workers.store.disk import DiskGuard, trim_log
from workers.waits import Foreground
from workers.wandb.runs import PARAM as WANDB_PARAM
from workers.wandb.runs import (
    WandbRun,
    WandbSettings,
    offline_runs,
    run_for,
    run_page,
    run_url,
    step_env,
    sync_hint,
)
from workers.wandb.runs import installed as wandb_installed

log = logging.getLogger(__name__)

TAIL_FOR_EVENTS = 12
# How often a cluster step's place (waiting, on which node) is looked at.
PLACEMENT_CHECK_S = 0.5


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
    wandb: WandbSettings = field(default_factory=WandbSettings)
    quotas: QuotaSettings = field(default_factory=QuotaSettings)
    quota_exempt: frozenset[int] = frozenset()
    local_gpus: int = 0
    """The GPUs this machine gives a step that wants one (for accounting)."""
    """User ids the quotas do not bind (admins, when ``quotas.admins_exempt``)."""

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


@dataclass(frozen=True)
class Reattach:
    """A step a previous colabot started that its executor still runs: the runner follows it
    instead of starting it; its first ``skip`` bytes of output are already logged, in the
    first ``log_length`` bytes of the job log (-1: not known)."""

    index: int
    handle: StepHandle
    skip: int = 0
    log_length: int = -1


class RunnerSink(Protocol):
    """Where a runner reports what happens to its job: each state change with its event,
    its progress, and the events people should get (notices, files)."""

    def state(
        self, job_id: int, target: JobState, *, error: str | None = ..., event: Payload | None = ...
    ) -> Job: ...

    def progress(self, job_id: int, progress: Progress) -> None: ...

    def post(self, job_id: int | None, payload: Payload) -> None: ...


BeforeRun = Callable[[Job, Path], Awaitable[None]]
"""Awaited when a job starts, before its inputs are resolved (kept uploads come back)."""


@dataclass(frozen=True)
class RunnerParts:
    """What a runner works with, handed to it explicitly."""

    settings: EngineSettings
    store: Store
    kind: JobKind
    inputs: InputResolver
    executor: Executor
    disk: DiskGuard
    sink: RunnerSink
    results: ResultsBackend | None = None
    before_run: tuple[BeforeRun, ...] = ()
    timings: JobTimings = field(default_factory=JobTimings)
    foreground: Foreground = field(default_factory=Foreground)


def job_wandb(kind: JobKind, spec: JobSpec, settings: WandbSettings, name: str) -> WandbRun | None:
    """How a job logs to W&B (None: it does not); SpecError when it cannot."""
    if spec.action is not Action.TRAIN or WANDB_PARAM not in kind.params(spec.action):
        return None
    asked = spec.params.get(WANDB_PARAM)
    return run_for(
        settings, asked if isinstance(asked, bool) else None, name, available=wandb_installed()
    )


class JobRunner:
    """Runs one job to its end through the executor, and holds what is known of it while it
    runs: its live progress, its current step, and how to stop it."""

    def __init__(self, parts: RunnerParts, job_id: int) -> None:
        self.parts = parts
        self.job_id = job_id
        self.task: asyncio.Task[None] | None = None
        self.live: Progress | None = None
        """The job's latest progress, as its steps report it."""
        self.passing: Progress | None = None
        """A passing message shown instead, while it lasts (results being saved)."""
        self.step = ""
        """The name of the step the job is in."""
        self.link = ""
        """The page where the run can be followed (a W&B run), once a step named it."""
        self.ctx: JobContext | None = None
        self.cancel_requested = False
        self._run: StepRun | None = None
        self._current: Step | None = None
        self._channel: LiveChannel | None = None
        self._stop_asked = ""
        self._replaying = False

    @property
    def workdir(self) -> Path:
        """The job's folder."""
        return self.parts.settings.jobs_dir / str(self.job_id)

    @property
    def log_path(self) -> Path:
        """The job's log file."""
        return self.workdir / "job.log"

    @property
    def shown(self) -> Progress | None:
        """The progress to show now: a passing message while it lasts, else the job's own."""
        return self.passing or self.live

    def start(self, reattach: Reattach | None = None) -> asyncio.Task[None]:
        """Start running the job in a task of its own (the loop's next turn begins it)."""
        self.task = asyncio.create_task(self.run(reattach), name=f"colabot-job-{self.job_id}")
        return self.task

    # what the engine asks of a running job --------------------------------------------------

    def placement(self) -> Placement | None:
        """Where the current step is: waiting for resources, or on which node."""
        handle = self._run.handle if self._run is not None else None
        return handle.placement() if handle is not None else None

    def checkpoint(self) -> Path | None:
        """The job's newest checkpoint, as its kind finds it."""
        return self.parts.kind.checkpoint(self.ctx) if self.ctx is not None else None

    def stop_early(self, *, dry_run: bool = False) -> Step:
        """Ask the current step to end its training early and keep its model; return the
        step. StopEarlyError when it has no training to stop, or cannot be reached.
        ``dry_run`` only checks."""
        step, ctx = self._current, self.ctx
        if step is None or ctx is None or (step.live is None and step.stop_file is None):
            doing = f"its current step ({self.step})" if self.step else "it"
            raise StopEarlyError(
                self.job_id, f"{doing} has no training to stop early (/cancel stops it now)"
            )
        if self._channel is not None and step.live is not None:
            if not dry_run:
                self._channel.send(step.live.stop_command)
        elif step.stop_file is not None:
            if not dry_run:
                step.stop_file.parent.mkdir(parents=True, exist_ok=True)
                touch_private(step.stop_file)  # a link planted at its name is not followed
        else:
            raise StopEarlyError(
                self.job_id,
                "it trains on a cluster node, out of reach of colabot's stop-early socket. "
                "/cancel stops it now, and /resume continues from its last checkpoint",
            )
        if not dry_run:
            self._stop_asked = step.name
            ctx.mark_stopped_early(step.name)
        return step

    async def cancel(self) -> None:
        """Stop the job now, keeping nothing new; return once it ended as cancelled."""
        self.cancel_requested = True
        self.stop()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self.task)

    def stop(self) -> None:
        """Stop the job: its step with the staged grace, or the job's task between steps."""
        if self._run is not None:
            self._run.cancel()
        elif self.task is not None:
            self.task.cancel()

    def detach(self) -> None:
        """Let go of the job, leaving its step running on the executor (colabot stops, and
        the next one follows the step again)."""
        if self._run is not None:
            self._run.detaching = True
        if self.task is not None:
            self.task.cancel()

    # the run ---------------------------------------------------------------------------------

    async def run(self, reattach: Reattach | None = None) -> None:
        """Run the job (or, after a restart, pick it up at a step its executor still runs);
        a cancel ends it as cancelled, anything else unexpected as failed."""
        try:
            await self._execute(reattach)
        except asyncio.CancelledError:
            if self.cancel_requested:
                self._finish(JobState.CANCELLED, Cancelled())
            else:
                raise
        except Exception as exc:
            log.exception("job %s hit an internal error", self.job_id)
            self.fail(f"internal error: {type(exc).__name__}: {exc}", [])

    def _report(self, progress: Progress) -> None:
        """The job's own progress: kept, and told to the sink."""
        if progress.updated_at == 0.0:
            progress = dataclasses.replace(progress, updated_at=time.time())
        self.live = progress
        if self.passing is None:
            self.parts.sink.progress(self.job_id, progress)

    def _finish(self, state: JobState, event: Payload) -> None:
        """Record the job's end (once), with its last progress and its event."""
        store = self.parts.store
        job = store.find_job(self.job_id)
        if job is None or job.state is not JobState.RUNNING:
            return  # someone else ended it (a fresh colabot found it interrupted)
        if self.live is not None:
            store.set_progress(self.job_id, self.live)
        error = event.reason if isinstance(event, Failed) else None
        self.parts.sink.state(self.job_id, state, error=error, event=event)
        self.parts.timings.recorded = time.time()

    def _interrupt(self, reason: str) -> None:
        """End the run as interrupted (resumable): the step was lost, not failed."""
        job = self.parts.store.find_job(self.job_id)
        if job is None or job.state is not JobState.RUNNING:
            return
        self.parts.sink.state(
            self.job_id, JobState.INTERRUPTED, error=reason, event=Interrupted(reason)
        )

    def fail(self, reason: str, tail: list[str], step: str = "") -> None:
        """End the job as failed, with why, in which step and its last lines."""
        event = Failed(reason=reason, tail=tail[-TAIL_FOR_EVENTS:], step=step)
        self._finish(JobState.FAILED, event)

    def _notice(self, text: str) -> None:
        self.parts.sink.post(self.job_id, Notice(text))

    def _notify(self, text: str) -> None:
        """A kind's notice; kept quiet while steps that ran before a restart are replayed
        (the chat heard it then)."""
        if not self._replaying:
            self._notice(text)

    async def _execute(self, reattach: Reattach | None) -> None:
        parts, job_id = self.parts, self.job_id
        kind, settings = parts.kind, parts.settings
        job = parts.store.get_job(job_id)
        resuming = job.attempt > 1 and job.spec.action is Action.TRAIN
        if reattach is None:
            job = parts.sink.state(job_id, JobState.RUNNING, event=Started(job.attempt))
        self._replaying = reattach is not None
        workdir = self.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        ctx = JobContext(
            job=job,
            workdir=workdir,
            inputs={},
            python=settings.python,
            notify=self._notify,
            input_roots=settings.input_roots,
            cache_dir=settings.data_dir / "cache",
        )
        try:
            name = f"colabot-job{job_id}-{job.spec.kind}"
            ctx.wandb = job_wandb(kind, job.spec, settings.wandb, name)
        except SpecError as exc:  # the settings changed since the job was queued
            self._notify(f"No W&B logging for this run: {exc.message}")
        self.ctx = ctx
        if reattach is None:
            (workdir / STOPPED_EARLY).unlink(missing_ok=True)
        try:
            if reattach is None:
                for prepare in parts.before_run:
                    await prepare(job, workdir)
            ctx.inputs = await parts.inputs.resolve(job.spec, workdir, self._report)
            if resuming:
                ctx.resume_from = await self._resume_point(job, ctx)
            for index, step in enumerate(_guarded(kind.steps(ctx))):
                if reattach is not None and index < reattach.index:
                    continue  # it ended before the restart; the kind still plans past it
                following = reattach if reattach is not None and index == reattach.index else None
                self._replaying = False
                result = await self._run_step(ctx, step, index, following)
                outcome = step_outcome(
                    result, cancel_requested=self.cancel_requested, free_mb=parts.disk.free_mb()
                )
                if outcome.disk_full and result.disk_full:
                    # This job's output filled the disk: cut its log so that others can go on.
                    await asyncio.to_thread(trim_log, self.log_path)
                reason = parts.disk.full_reason() if outcome.disk_full else result.reason
                match outcome.verdict:
                    case Verdict.NEXT:
                        continue
                    case Verdict.INTERRUPTED:
                        self._interrupt(reason or "the executor lost the step")
                    case Verdict.CANCELLED:
                        self._finish(JobState.CANCELLED, Cancelled())
                    case Verdict.LET_GO:
                        pass
                    case Verdict.FAILED:
                        explained = (
                            None
                            if outcome.disk_full
                            else kind.explain_failure(ctx, step, result.tail)
                        )
                        self.fail(explained or reason or "failed", result.tail, step.name)
                return
            await self._succeed(ctx, kind.collect(ctx))
        except ColabotError as exc:
            tail = exc.tail if isinstance(exc, StepFailedError) else []
            self.fail(str(exc), tail)

    async def _resume_point(self, job: Job, ctx: JobContext) -> Path | None:
        local = self.parts.kind.checkpoint(ctx)
        if local is not None:
            return local
        results = self.parts.results
        if job.checkpoint and results is not None:
            dest = ctx.workdir / "restored"
            return await asyncio.to_thread(results.fetch_checkpoint, job.id, job.checkpoint, dest)
        return None

    def _launch(
        self, ctx: JobContext, step: Step, index: int, channel: LiveChannel | None = None
    ) -> Launch:
        wandb = step_env(ctx.wandb, self.parts.settings.wandb)
        env = step_environment({**wandb, **step.env, "COLABOT_JOB_ID": str(self.job_id)})
        argv = list(step.argv)
        if channel is not None and step.live is not None:
            argv += step.live.args(channel.progress_address, channel.control_address)
        return Launch(
            job_id=self.job_id,
            index=index,
            name=step.name,
            argv=tuple(str(a) for a in argv),
            env=env,
            cwd=step.cwd or ctx.scratch_dir,
            wants_gpu=step.wants_gpu,
            attempt=ctx.job.attempt,
            job_dir=ctx.workdir,
        )

    async def _run_step(
        self, ctx: JobContext, step: Step, index: int, reattach: Reattach | None = None
    ) -> StepResult:
        parts, job_id = self.parts, self.job_id
        settings, store = parts.settings, parts.store
        self.step = step.name
        log_path = self.log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if reattach is None:
            # A log that cannot be opened (a link planted at its name) is StepRun's to refuse.
            with contextlib.suppress(OSError), open_job_log(log_path) as handle:
                header = f"\n=== colabot step: {label(step.name)} ===\n$ {shlex.join(step.argv)}\n"
                handle.write(header.encode())
        for folder in (ctx.outputs_dir, ctx.scratch_dir):
            folder.mkdir(parents=True, exist_ok=True)

        server = settings.wandb.base_url

        def on_line(source: str, line: str) -> None:
            # A page the job names is shown only when it is on the configured W&B host.
            url = run_url(line) if source == "output" else None
            url = run_page(url, server) if url is not None else None
            if url is not None and url != self.link:
                self.link = url
                self._notify(f"W&B run: {url}")
            progress = step.parser(source, line) if step.parser is not None else None
            if progress is None and url is not None:
                # The line is the news: the page it names, on the progress already shown.
                progress = dataclasses.replace(self.live or Progress(), link=url, updated_at=0.0)
            if progress is not None:
                if progress.link and run_page(progress.link, server) is None:
                    progress = dataclasses.replace(progress, link="")
                if self.link and not progress.link:
                    progress = dataclasses.replace(progress, link=self.link)
                self._report(progress)

        def on_live(text: str) -> None:
            on_line(LIVE_SOURCE, text)
            if self._stop_asked == step.name and self._channel is not None and step.live:
                # The job may have missed it (a subscriber only hears what comes after it
                # connected): say it again until the step ends.
                self._channel.send(step.live.stop_command)

        channel = self._open_channel(step, on_live) if reattach is None else None
        launch = self._launch(ctx, step, index, channel)

        def on_start(handle: StepHandle) -> None:
            parts.timings.spawned = time.time()
            if reattach is None:
                gpus = parts.executor.gpus_held(launch)
                record = StepRecord(
                    job_id,
                    index,
                    step.name,
                    parts.executor.name,
                    handle.ref,
                    time.time(),
                    gpus=gpus,
                )
                store.start_step(record)

        def on_consumed(count: int, log_length: int) -> None:
            store.set_step_output(job_id, index, count, log_length)

        timeout = ctx.param("timeout")
        run = StepRun(
            parts.executor,
            launch,
            log_path=log_path,
            on_line=on_line,
            watch=step.watch,
            timeout_s=float(timeout) * 60 if timeout else settings.default_timeout_s,
            grace=settings.grace,
            on_start=on_start,
            on_consumed=on_consumed,
            on_disk_full=parts.disk.release_reserve,
            foreground=parts.foreground,
        )
        self._run, self._current, self._channel = run, step, channel
        # On a cluster the step can wait for resources and then run on a node: what the
        # status shows changes without any progress, so the change is reported as one.
        watcher = (
            None
            if parts.executor.runs_here
            else asyncio.create_task(self._watch_placement(run), name=f"colabot-place-{job_id}")
        )
        try:
            if reattach is None:
                if channel is not None:
                    channel.start()
                result = await run.run()
            else:
                await asyncio.to_thread(_cut_log, log_path, reattach.log_length)
                result = await run.follow(reattach.handle, skip=reattach.skip)
        finally:
            if watcher is not None:
                watcher.cancel()
            self._run, self._current, self._channel = None, None, None
            if channel is not None:
                await channel.close_async()
            if not run.detaching:
                # A detached step runs on; the next colabot finds it open and follows it.
                store.end_step(job_id, index)
        if result.note:
            self._notice(result.note)
        parts.timings.exited = result.ended_at or time.time()
        return result

    async def _watch_placement(self, run: StepRun) -> None:
        """Report the job's progress again whenever its step's place changes (waiting for
        resources, running on a node)."""
        seen: Placement | None = None
        while True:
            place = run.handle.placement() if run.handle is not None else None
            if place is not None and place != seen:
                seen = place
                self._report(self.live or Progress())
            await asyncio.sleep(PLACEMENT_CHECK_S)

    def _open_channel(self, step: Step, on_message: Callable[[str], None]) -> LiveChannel | None:
        """Private sockets (in a 0700 folder of the job's, removed when the step ends) for a
        step that can use them here; None on a cluster (its watched files still report
        progress) or when they cannot be opened."""
        if step.live is None or not self.parts.executor.runs_here:
            return None
        try:
            return LiveChannel(on_message, near=self.workdir)
        except Exception as exc:
            log.warning("no live channel for job %s: %s", self.job_id, exc)
            return None

    def _with_wandb(self, ctx: JobContext, outcome: Outcome) -> Outcome:
        """The W&B run in the results: its page when it was online, or its offline folders
        kept with the outputs and the command that uploads them."""
        if ctx.wandb is None:
            return outcome
        outputs, summary = list(outcome.outputs), outcome.summary
        if self.link:
            summary += f"\nW&B run: {self.link}"
        runs = offline_runs(ctx.outputs_dir)
        folder = ctx.outputs_dir / "wandb"
        if folder.is_dir() and not any(folder.is_relative_to(o.path) for o in outputs):
            outputs.append(Output(folder, "wandb", "W&B offline run", send=False))
        if runs:
            summary += "\n" + sync_hint(runs, ctx.outputs_dir)
        return dataclasses.replace(outcome, outputs=outputs, summary=summary.strip())

    async def _succeed(self, ctx: JobContext, outcome: Outcome) -> None:
        parts, job_id = self.parts, self.job_id
        store, results = parts.store, parts.results
        outcome = self._with_wandb(ctx, outcome)
        notes: list[str] = []
        existing = [o for o in outcome.outputs if o.path.exists()]
        present = inside_job(ctx.workdir, existing, notes.append)
        store.set_outputs(job_id, [KeptOutput(o.role, str(o.path)) for o in present])
        packed = await asyncio.to_thread(package_outputs, ctx.workdir, present, notes.append)
        compared: list[str] = []
        if outcome.quality is not None:
            # Kept with the job; compared with the newest earlier run on the same data.
            store.set_quality(job_id, ctx.spec.kind, outcome.quality)
            earlier = store.earlier_on_same_data(job_id, ctx.spec.kind, outcome.quality.data)
            if earlier is not None:
                compared = comparison(outcome.quality, earlier[1], earlier[0])
        summary = "\n".join([outcome.summary, *compared, *notes]).strip()
        links: list[Link] = []
        if results is not None and packed:
            try:
                links = await self._publish(results, packed)
            except ColabotError as exc:
                # The work is done and on disk; failing the job would hide that.
                self._notice(
                    f"The results could not be saved to {results.name}: {exc}. "
                    f"They are still on this machine in {ctx.outputs_dir}."
                )
                links = [Link(p.label, str(p.output.path)) for p in packed]
        if self.link:
            links.append(Link("W&B run", self.link))
        if links:
            store.set_links(job_id, links)
        store.set_summary(job_id, summary)
        self._finish(JobState.SUCCEEDED, Succeeded(summary, links, dict(outcome.metrics)))
        for file in files_for_chat(packed, parts.settings.send_files_under_bytes):
            parts.sink.post(job_id, file)

    async def _publish(self, backend: ResultsBackend, packed: list[Packed]) -> list[Link]:
        loop = asyncio.get_running_loop()

        def passing(progress: Progress) -> None:
            self.passing = progress
            self.parts.sink.progress(self.job_id, progress)

        def report(name: str, sent: int, total: int) -> None:
            fraction = sent / total if total else 1.0
            progress = Progress(fraction=fraction, message=f"uploading {name}: {fraction:.0%}")
            loop.call_soon_threadsafe(passing, progress)

        # Upload progress is shown while it lasts; the job keeps its own progress after.
        passing(Progress(message=f"saving results to {backend.name}"))
        try:
            return await asyncio.to_thread(
                publish, backend, self.job_id, packed, self.log_path, report
            )
        finally:
            self.passing = None


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


def _cut_log(path: Path, length: int) -> None:
    """Cut the job log back to where its recorded output offset ends: lines logged after
    that point (by a colabot killed before it recorded them) are read and logged again."""
    if length < 0:
        return
    with contextlib.suppress(OSError), open_to_change(path) as handle:
        if handle.seek(0, os.SEEK_END) > length:
            handle.truncate(length)
