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
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from workers.errors import ColabotError, SpecError, StepFailedError, StopEarlyError
from workers.events import Cancelled, Failed, Interrupted, Payload, Started, Succeeded
from workers.executors.base import Executor, Grace, Launch, StepHandle, describe_exit
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
from workers.kinds.registry import KindRegistry
from workers.live import LiveChannel
from workers.outputs import Packed, files_for_chat, inside_job, package_outputs, publish
from workers.results.base import ResultsBackend
from workers.safety.environment import step_environment
from workers.safety.files import open_to_change, touch_private
from workers.safety.names import label
from workers.safety.redaction import SECRETS
from workers.steprun import StepResult, StepRun, open_job_log
from workers.store.database import Store
from workers.store.disk import DiskGuard, trim_log
from workers.wandb.runs import (
    WandbRun,
    WandbSettings,
    offline_runs,
    run_page,
    run_url,
    step_env,
    sync_hint,
)

log = logging.getLogger(__name__)

TAIL_FOR_EVENTS = 12


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
class ActiveJob:
    """What the engine holds for a job while it runs."""

    task: asyncio.Task[None]
    run: StepRun | None = None
    ctx: JobContext | None = None
    kind: JobKind | None = None
    cancel_requested: bool = False
    step: str = ""
    last_flush: float = 0.0
    current: Step | None = None
    channel: LiveChannel | None = None
    stop_asked: str = ""
    """The step a stop-early request was sent to (its live link repeats it until heard)."""
    link: str = ""
    """The page where the run can be followed (a W&B run), once a step printed it."""

    def stop_early(self, job_id: int, *, dry_run: bool = False) -> Step:
        """Ask the current step to end its training early and keep its model; return the
        step. StopEarlyError when it has no training to stop, or cannot be reached.
        ``dry_run`` only checks."""
        step, ctx = self.current, self.ctx
        if step is None or ctx is None or (step.live is None and step.stop_file is None):
            doing = f"its current step ({self.step})" if self.step else "it"
            raise StopEarlyError(
                job_id, f"{doing} has no training to stop early (/cancel stops it now)"
            )
        if self.channel is not None and step.live is not None:
            if not dry_run:
                self.channel.send(step.live.stop_command)
        elif step.stop_file is not None:
            if not dry_run:
                step.stop_file.parent.mkdir(parents=True, exist_ok=True)
                touch_private(step.stop_file)  # a link planted at its name is not followed
        else:
            raise StopEarlyError(
                job_id,
                "it trains on a cluster node, out of reach of colabot's stop-early socket. "
                "/cancel stops it now, and /resume continues from its last checkpoint",
            )
        if not dry_run:
            self.stop_asked = step.name
            ctx.mark_stopped_early(step.name)
        return step

    def stop(self) -> None:
        """Stop the job: its step with the staged grace, or the job's task between steps."""
        if self.run is not None:
            self.run.cancel()
        else:
            self.task.cancel()

    def detach(self) -> None:
        """Let go of the job, leaving its step running on the executor (colabot stops, and
        the next one follows the step again)."""
        if self.run is not None:
            self.run.detaching = True
        self.task.cancel()


@dataclass(frozen=True)
class Reattach:
    """A step a previous colabot started that its executor still runs: the runner follows it
    instead of starting it; its first ``skip`` bytes of output are already logged, in the
    first ``log_length`` bytes of the job log (-1: not known)."""

    index: int
    handle: StepHandle
    skip: int = 0
    log_length: int = -1


class JobHost(Protocol):
    """What a runner needs from the engine that owns it."""

    settings: EngineSettings
    store: Store
    registry: KindRegistry
    inputs: InputResolver
    results: ResultsBackend | None
    disk: DiskGuard
    executor: Executor
    before_run_hooks: list[Callable[[Job, Path], Awaitable[None]]]

    def set_state(
        self, job_id: int, target: JobState, *, error: str | None = ..., event: Payload | None = ...
    ) -> Job: ...

    def progress(self, job_id: int, progress: Progress) -> None: ...

    def live(self, job_id: int) -> Progress | None: ...

    def restore_live(self, job_id: int, progress: Progress) -> None: ...

    def notice(self, job_id: int | None, text: str) -> None: ...

    def post(self, job_id: int | None, payload: Payload) -> None: ...

    def timing(self, job_id: int) -> JobTimings: ...

    def workdir(self, job_id: int) -> Path: ...

    def wandb_run(self, spec: JobSpec, name: str) -> WandbRun | None: ...

    def log_path(self, job_id: int) -> Path: ...


@dataclass(frozen=True)
class BriefEnd:
    """How a short helper program ended: its exit code (None: it ran out of time), a
    reason in words, and its last output lines (redacted)."""

    returncode: int | None
    reason: str
    lines: list[str]


async def run_briefly(argv: Sequence[str], env: dict[str, str], timeout_s: float) -> BriefEnd:
    """Run a short helper (drawing a picture, say) here, away from any job's step, and
    wait for it; it is killed with its process group when it runs out of time."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return BriefEnd(None, f"it took longer than {timeout_s:g} s", [])
    text = SECRETS.redact(output[-64 * 1024 :].decode("utf-8", errors="replace"))
    lines = [line for line in text.splitlines() if line.strip()][-TAIL_FOR_EVENTS:]
    reason = describe_exit(process.returncode) or "it succeeded"
    return BriefEnd(process.returncode, reason, lines)


class JobRunner:
    """Runs one job to its end through the host's executor."""

    def __init__(self, host: JobHost, job_id: int, active: ActiveJob) -> None:
        self.host = host
        self.job_id = job_id
        self.active = active
        self._replaying = False

    async def run(self, reattach: Reattach | None = None) -> None:
        """Run the job (or, after a restart, pick it up at a step its executor still runs);
        a cancel ends it as cancelled, anything else unexpected as failed."""
        try:
            await self._execute(reattach)
        except asyncio.CancelledError:
            if self.active.cancel_requested:
                self._finish(JobState.CANCELLED, Cancelled())
            else:
                raise
        except Exception as exc:
            log.exception("job %s hit an internal error", self.job_id)
            self.fail(f"internal error: {type(exc).__name__}: {exc}", [])

    def _finish(self, state: JobState, event: Payload) -> None:
        """Record the job's end (once), with its last progress and its event."""
        job = self.host.store.find_job(self.job_id)
        if job is None or job.state is not JobState.RUNNING:
            return  # someone else ended it (a fresh colabot found it interrupted)
        live = self.host.live(self.job_id)
        if live is not None:
            self.host.store.set_progress(self.job_id, live)
        error = event.reason if isinstance(event, Failed) else None
        self.host.set_state(self.job_id, state, error=error, event=event)
        self.host.timing(self.job_id).recorded = time.time()

    def _interrupt(self, reason: str) -> None:
        """End the run as interrupted (resumable): the step was lost, not failed."""
        job = self.host.store.find_job(self.job_id)
        if job is None or job.state is not JobState.RUNNING:
            return
        self.host.set_state(
            self.job_id, JobState.INTERRUPTED, error=reason, event=Interrupted(reason)
        )

    def fail(self, reason: str, tail: list[str], step: str = "") -> None:
        """End the job as failed, with why, in which step and its last lines."""
        event = Failed(reason=reason, tail=tail[-TAIL_FOR_EVENTS:], step=step)
        self._finish(JobState.FAILED, event)

    def _notify(self, text: str) -> None:
        """A kind's notice; kept quiet while steps that ran before a restart are replayed
        (the chat heard it then)."""
        if not self._replaying:
            self.host.notice(self.job_id, text)

    async def _execute(self, reattach: Reattach | None) -> None:
        host, job_id = self.host, self.job_id
        job = host.store.get_job(job_id)
        kind = host.registry.get(job.spec.kind)
        resuming = job.attempt > 1 and job.spec.action is Action.TRAIN
        if reattach is None:
            job = host.set_state(job_id, JobState.RUNNING, event=Started(job.attempt))
        self._replaying = reattach is not None
        workdir = host.workdir(job_id)
        workdir.mkdir(parents=True, exist_ok=True)
        ctx = JobContext(
            job=job,
            workdir=workdir,
            inputs={},
            python=host.settings.python,
            notify=self._notify,
            input_roots=host.settings.input_roots,
            cache_dir=host.settings.data_dir / "cache",
        )
        try:
            ctx.wandb = host.wandb_run(job.spec, f"colabot-job{job_id}-{job.spec.kind}")
        except SpecError as exc:  # the settings changed since the job was queued
            self._notify(f"No W&B logging for this run: {exc.message}")
        self.active.ctx = ctx
        self.active.kind = kind
        if reattach is None:
            (workdir / STOPPED_EARLY).unlink(missing_ok=True)
        try:
            if reattach is None:
                for prepare in host.before_run_hooks:
                    await prepare(job, workdir)
            ctx.inputs = await host.inputs.resolve(
                job.spec, workdir, lambda progress: host.progress(job_id, progress)
            )
            if resuming:
                ctx.resume_from = await self._resume_point(job, kind, ctx)
            for index, step in enumerate(_guarded(kind.steps(ctx))):
                if reattach is not None and index < reattach.index:
                    continue  # it ended before the restart; the kind still plans past it
                following = reattach if reattach is not None and index == reattach.index else None
                self._replaying = False
                result = await self._run_step(ctx, step, index, following)
                if result.lost or (result.resumable and not result.cancelled):
                    # Lost with its cluster, or ended by it (preempted, a failed node): not
                    # the job's fault, so it can be resumed.
                    self._interrupt(result.reason or "the executor lost the step")
                    return
                if result.cancelled:
                    if self.active.cancel_requested:
                        self._finish(JobState.CANCELLED, Cancelled())
                    return
                if not result.ok:
                    explained = (
                        None if result.disk_full else kind.explain_failure(ctx, step, result.tail)
                    )
                    self.fail(explained or result.reason or "failed", result.tail, step.name)
                    return
            await self._succeed(ctx, kind.collect(ctx))
        except ColabotError as exc:
            tail = exc.tail if isinstance(exc, StepFailedError) else []
            self.fail(str(exc), tail)

    async def _resume_point(self, job: Job, kind: JobKind, ctx: JobContext) -> Path | None:
        local = kind.checkpoint(ctx)
        if local is not None:
            return local
        results = self.host.results
        if job.checkpoint and results is not None:
            dest = ctx.workdir / "restored"
            return await asyncio.to_thread(results.fetch_checkpoint, job.id, job.checkpoint, dest)
        return None

    def _launch(
        self, ctx: JobContext, step: Step, index: int, channel: LiveChannel | None = None
    ) -> Launch:
        wandb = step_env(ctx.wandb, self.host.settings.wandb)
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
        host, job_id = self.host, self.job_id
        self.active.step = step.name
        log_path = host.log_path(job_id)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if reattach is None:
            # A log that cannot be opened (a link planted at its name) is StepRun's to refuse.
            with contextlib.suppress(OSError), open_job_log(log_path) as handle:
                header = f"\n=== colabot step: {label(step.name)} ===\n$ {shlex.join(step.argv)}\n"
                handle.write(header.encode())
        for folder in (ctx.outputs_dir, ctx.scratch_dir):
            folder.mkdir(parents=True, exist_ok=True)

        server = host.settings.wandb.base_url

        def on_line(source: str, line: str) -> None:
            # A page the job names is shown only when it is on the configured W&B host.
            url = run_url(line) if source == "output" else None
            url = run_page(url, server) if url is not None else None
            if url is not None and url != self.active.link:
                self.active.link = url
                self._notify(f"W&B run: {url}")
            progress = step.parser(source, line) if step.parser is not None else None
            if progress is None and url is not None:
                progress = host.live(job_id) or Progress()
            if progress is not None:
                if progress.link and run_page(progress.link, server) is None:
                    progress = dataclasses.replace(progress, link="")
                if self.active.link and not progress.link:
                    progress = dataclasses.replace(progress, link=self.active.link)
                host.progress(job_id, progress)

        def on_live(text: str) -> None:
            on_line(LIVE_SOURCE, text)
            active = self.active
            if active.stop_asked == step.name and active.channel is not None and step.live:
                # The job may have missed it (a subscriber only hears what comes after it
                # connected): say it again until the step ends.
                active.channel.send(step.live.stop_command)

        def on_start(handle: StepHandle) -> None:
            host.timing(job_id).spawned = time.time()
            if reattach is None:
                record = StepRecord(
                    job_id, index, step.name, host.executor.name, handle.ref, time.time()
                )
                host.store.start_step(record)

        def on_consumed(count: int, log_length: int) -> None:
            host.store.set_step_output(job_id, index, count, log_length)

        channel = self._open_channel(step, on_live) if reattach is None else None
        timeout = ctx.param("timeout")
        run = StepRun(
            host.executor,
            self._launch(ctx, step, index, channel),
            log_path=log_path,
            on_line=on_line,
            watch=step.watch,
            timeout_s=float(timeout) * 60 if timeout else host.settings.default_timeout_s,
            grace=host.settings.grace,
            on_start=on_start,
            on_consumed=on_consumed,
            on_disk_full=host.disk.release_reserve,
        )
        self.active.run = run
        self.active.current = step
        self.active.channel = channel
        try:
            if reattach is None:
                if channel is not None:
                    channel.start()
                result = await run.run()
            else:
                await asyncio.to_thread(_cut_log, log_path, reattach.log_length)
                result = await run.follow(reattach.handle, skip=reattach.skip)
        finally:
            self.active.run = None
            self.active.current = None
            self.active.channel = None
            if channel is not None:
                await channel.close_async()
            if not run.detaching:
                # A detached step runs on; the next colabot finds it open and follows it.
                host.store.end_step(job_id, index)
        if result.note:
            host.notice(job_id, result.note)
        host.timing(job_id).exited = result.ended_at or time.time()
        if result.disk_full or (not result.ok and host.disk.free_mb() < 1.0):
            reason = host.disk.full_reason()
            if result.disk_full:
                # This job's output filled the disk: cut its log so that others can go on.
                trim_log(log_path)
            result = dataclasses.replace(result, reason=reason, disk_full=True)
        return result

    def _open_channel(self, step: Step, on_message: Callable[[str], None]) -> LiveChannel | None:
        """Private sockets (in a 0700 folder of the job's, removed when the step ends) for a
        step that can use them here; None on a cluster (its watched files still report
        progress) or when they cannot be opened."""
        if step.live is None or not self.host.executor.runs_here:
            return None
        try:
            return LiveChannel(on_message, near=self.host.workdir(self.job_id))
        except Exception as exc:
            log.warning("no live channel for job %s: %s", self.job_id, exc)
            return None

    def _with_wandb(self, ctx: JobContext, outcome: Outcome) -> Outcome:
        """The W&B run in the results: its page when it was online, or its offline folders
        kept with the outputs and the command that uploads them."""
        if ctx.wandb is None:
            return outcome
        outputs, summary = list(outcome.outputs), outcome.summary
        if self.active.link:
            summary += f"\nW&B run: {self.active.link}"
        runs = offline_runs(ctx.outputs_dir)
        folder = ctx.outputs_dir / "wandb"
        if folder.is_dir() and not any(folder.is_relative_to(o.path) for o in outputs):
            outputs.append(Output(folder, "wandb", "W&B offline run", send=False))
        if runs:
            summary += "\n" + sync_hint(runs, ctx.outputs_dir)
        return dataclasses.replace(outcome, outputs=outputs, summary=summary.strip())

    async def _succeed(self, ctx: JobContext, outcome: Outcome) -> None:
        host, job_id = self.host, self.job_id
        outcome = self._with_wandb(ctx, outcome)
        notes: list[str] = []
        existing = [o for o in outcome.outputs if o.path.exists()]
        present = inside_job(ctx.workdir, existing, notes.append)
        host.store.set_outputs(job_id, [KeptOutput(o.role, str(o.path)) for o in present])
        packed = await asyncio.to_thread(package_outputs, ctx.workdir, present, notes.append)
        summary = "\n".join([outcome.summary, *notes]).strip()
        links: list[Link] = []
        if host.results is not None and packed:
            try:
                links = await self._publish(packed)
            except ColabotError as exc:
                # The work is done and on disk; failing the job would hide that.
                host.notice(
                    job_id,
                    f"The results could not be saved to {host.results.name}: {exc}. "
                    f"They are still on this machine in {ctx.outputs_dir}.",
                )
                links = [Link(p.label, str(p.output.path)) for p in packed]
        if self.active.link:
            links.append(Link("W&B run", self.active.link))
        if links:
            host.store.set_links(job_id, links)
        host.store.set_summary(job_id, summary)
        self._finish(JobState.SUCCEEDED, Succeeded(summary, links, dict(outcome.metrics)))
        for file in files_for_chat(packed, host.settings.send_files_under_bytes):
            host.post(job_id, file)

    async def _publish(self, packed: list[Packed]) -> list[Link]:
        host, job_id = self.host, self.job_id
        backend = host.results
        assert backend is not None
        loop = asyncio.get_running_loop()

        def report(name: str, sent: int, total: int) -> None:
            fraction = sent / total if total else 1.0
            progress = Progress(fraction=fraction, message=f"uploading {name}: {fraction:.0%}")
            loop.call_soon_threadsafe(host.progress, job_id, progress)

        # Upload progress is shown while it lasts; the job keeps its own progress after.
        kept = host.live(job_id)
        host.progress(job_id, Progress(message=f"saving results to {backend.name}"))
        try:
            return await asyncio.to_thread(
                publish, backend, job_id, packed, host.log_path(job_id), report
            )
        finally:
            if kept is not None:
                host.restore_live(job_id, kept)


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
