"""One step, from start to end, on any executor: its output redacted into the job log and
split into lines for the progress hook, watched files followed, a cancel or a timeout staged
into a stop, and a full disk turned into a clear reason.

Output is streamed in bounded chunks and never accumulated; only the last few lines are
kept, to explain a failure. The step is over once its executor says it ended and a short
grace has passed, even if a stray process still holds the output open. How a step ended
decides, in one pure function (:func:`step_outcome`), what happens to its job.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from workers.errors import StartError
from workers.executors.base import Executor, Exit, Grace, Launch, StepHandle, describe_exit
from workers.safety.files import create_private
from workers.safety.redaction import SECRETS, Redactor, StreamRedactor
from workers.store.disk import FULL_ERRNOS
from workers.waits import Foreground

MAX_HOOK_LINE = 8 * 1024
TAIL_LINES = 40
WATCH_INTERVAL_S = 1.0
# How often the count of output bytes read is recorded (where a re-attached step resumes).
CONSUMED_EVERY_S = 1.0


def open_job_log(path: Path) -> BinaryIO:
    """Open the job log to add to it: created private (0600) when new, and never through a
    link placed at its name (OSError)."""
    return create_private(path, append=True, exclusive=False)


LineHook = Callable[[str, str], None]
"""Called with (source, line): source is ``"output"`` or the name of a watched file."""


@dataclass(frozen=True)
class StepResult:
    """How a step ended. ``reason`` is None exactly when it succeeded."""

    returncode: int | None
    reason: str | None
    tail: list[str] = field(default_factory=list)
    started: bool = True
    cancelled: bool = False
    timed_out: bool = False
    pid: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    disk_full: bool = False
    lost: bool = False
    resumable: bool = False
    note: str | None = None

    @property
    def ok(self) -> bool:
        """True when the step exited 0 and was neither cancelled nor timed out."""
        return self.reason is None


class LineSplitter:
    """Turns byte chunks into text lines; ``\\r`` counts as a line end (progress bars)."""

    def __init__(self, source: str, hook: LineHook | None, tail: deque[str]) -> None:
        self._source = source
        self._hook = hook
        self._tail = tail
        self._pending = b""

    def feed(self, chunk: bytes) -> None:
        """Take a chunk; hand every complete line to the hook."""
        data = self._pending + chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        cut = data.rfind(b"\n") + 1
        ready, pending = data[:cut], data[cut:]
        pieces = []
        while len(pending) > MAX_HOOK_LINE:
            # A line without an end in sight: hand it over in pieces rather than hoard it.
            pieces.append(pending[:MAX_HOOK_LINE])
            pending = pending[MAX_HOOK_LINE:]
        self._pending = pending
        # Whole lines decode as one block: a character never straddles a line end.
        lines = ready.decode("utf-8", errors="replace").split("\n") if ready else []
        lines.extend(piece.decode("utf-8", errors="replace") for piece in pieces)
        self._emit(lines)

    def flush(self) -> None:
        """Hand over the last line, even without its line end."""
        if self._pending:
            self._emit([self._pending.decode("utf-8", errors="replace")])
            self._pending = b""

    def _emit(self, lines: list[str]) -> None:
        tail, hook, source = self._tail, self._hook, self._source
        for line in lines:
            if not line:
                continue
            if len(line) > MAX_HOOK_LINE:
                line = line[:MAX_HOOK_LINE]
            tail.append(line)
            if hook is not None:
                try:
                    hook(source, line)
                except Exception:  # noqa: S112 - a progress parser must never kill the run
                    continue


class FileWatcher:
    """Follows files a step writes (such as a CSV log) and feeds their new lines."""

    def __init__(self, paths: Sequence[Path], hook: LineHook | None) -> None:
        self._paths = list(paths)
        self._offsets: dict[Path, int] = {}
        self._splitters = {p: LineSplitter(p.name, hook, deque(maxlen=1)) for p in paths}

    def poll(self) -> None:
        """Read what each file gained since the last poll."""
        for path in self._paths:
            try:
                size = path.stat().st_size
            except OSError:
                continue
            offset = self._offsets.get(path, 0)
            if size < offset:
                offset = 0
            if size == offset:
                continue
            with path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read(size - offset)
            self._offsets[path] = offset + len(data)
            self._splitters[path].feed(data)


class StepRun:
    """Runs one step on an executor and follows it to its end."""

    def __init__(
        self,
        executor: Executor,
        launch: Launch,
        *,
        log_path: Path,
        on_line: LineHook | None = None,
        watch: Sequence[Path] = (),
        timeout_s: float | None = None,
        grace: Grace | None = None,
        on_start: Callable[[StepHandle], None] | None = None,
        on_consumed: Callable[[int, int], None] | None = None,
        redactor: Redactor = SECRETS,
        on_disk_full: Callable[[], None] | None = None,
        foreground: Foreground | None = None,
    ) -> None:
        self.executor = executor
        self.launch = launch
        self.log_path = log_path
        self.on_line = on_line
        self.watch = list(watch)
        self.timeout_s = timeout_s
        self.grace = grace or Grace()
        self.on_start = on_start
        self.on_consumed = on_consumed
        self.redactor = redactor
        self.on_disk_full = on_disk_full
        self.foreground = foreground or Foreground()
        self.handle: StepHandle | None = None
        self.detaching = False
        """When set, a cancelled run leaves its step running (it is followed again later)."""
        self.consumed = 0
        """Raw output bytes read so far (where a re-attached step's output resumes)."""
        self._cancel = asyncio.Event()
        self._disk_full = asyncio.Event()
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)

    def cancel(self) -> None:
        """Ask the step to stop: SIGINT, then SIGTERM, then a kill, with the grace between."""
        self._cancel.set()

    async def run(self) -> StepResult:
        """Start the step and follow it to its end."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            open_job_log(self.log_path).close()
        except OSError as exc:
            reason = f"cannot write the job log {self.log_path.name}: {exc.strerror or exc}"
            return StepResult(returncode=None, reason=reason, tail=[reason], started=False)
        try:
            handle = await self.executor.start(self.launch)
        except StartError as exc:
            with open_job_log(self.log_path) as log:
                log.write(f"colabot: {exc.reason}\n".encode())
            return StepResult(returncode=None, reason=exc.reason, tail=[exc.reason], started=False)
        return await self.follow(handle)

    async def follow(self, handle: StepHandle, *, skip: int = 0) -> StepResult:
        """Follow a started (or re-attached) step to its end; the first ``skip`` bytes of its
        output are already in the log."""
        self.handle = handle
        started_at = time.time()
        if self.on_start is not None:
            self.on_start(handle)
        pump = asyncio.create_task(self._pump(handle.output(), skip))
        file_watcher = FileWatcher(self.watch, self.on_line)
        watcher = asyncio.create_task(self._watch(file_watcher)) if self.watch else None
        try:
            end, cancelled, timed_out = await self._supervise(handle)
        finally:
            if watcher is not None:
                watcher.cancel()
            with contextlib.suppress(Exception):
                await self._drain(pump, handle)
        if watcher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            file_watcher.poll()
        disk_full = self._disk_full.is_set()
        return StepResult(
            returncode=end.returncode,
            reason=self._reason(end, cancelled, timed_out, disk_full),
            tail=list(self._tail),
            cancelled=cancelled and not disk_full,
            timed_out=timed_out,
            pid=handle.pid,
            started_at=started_at,
            ended_at=time.time(),
            disk_full=disk_full,
            lost=end.lost and not cancelled,
            resumable=end.resumable,
            note=end.note,
        )

    def _reason(self, end: Exit, cancelled: bool, timed_out: bool, disk_full: bool) -> str | None:
        if disk_full:
            return "disk full"
        if cancelled or timed_out:
            timeout = self.timeout_s if timed_out else None
            return describe_exit(end.returncode, cancelled=cancelled, timed_out=timeout)
        if end.reason is not None:
            return end.reason
        return describe_exit(end.returncode)

    async def _supervise(self, handle: StepHandle) -> tuple[Exit, bool, bool]:
        """Wait for the step, a cancel, a full disk or the timeout; stop it if need be.

        Returns (how it ended, cancelled, timed out).
        """
        waiter = asyncio.create_task(handle.wait())
        cancel = asyncio.create_task(self._cancel.wait())
        disk_full = asyncio.create_task(self._disk_full.wait())
        try:
            done, _ = await asyncio.wait(
                {waiter, cancel, disk_full},
                timeout=self.timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:
            if self.detaching:
                waiter.cancel()
                raise
            await handle.stop(self.grace)
            await asyncio.shield(waiter)
            raise
        finally:
            cancel.cancel()
            disk_full.cancel()
        if waiter in done:
            return waiter.result(), False, False
        await handle.stop(self.grace)
        end = await waiter
        stopped = cancel in done or disk_full in done
        return end, stopped, not stopped

    async def _drain(self, pump: asyncio.Task[None], handle: StepHandle) -> None:
        """Let the pump read what is left; give up on output a stray still holds open."""
        try:
            grace = 0.0 if self.detaching else handle.output_grace_s
            await asyncio.wait_for(asyncio.shield(pump), timeout=grace)
        except TimeoutError:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        finally:
            await handle.close()

    async def _pump(self, output: AsyncIterator[bytes], skip: int) -> None:
        splitter = LineSplitter("output", self.on_line, self._tail)
        redacting = self.redactor.stream()
        told = time.monotonic()
        with open_job_log(self.log_path) as log:
            writable = True
            if not skip:
                # Where this step's output starts in the log: a colabot killed before the
                # next point is recorded cuts the log back to here and reads it all again.
                self._tell_logged(log, redacting)
            try:
                async for raw in output:
                    chunk = raw
                    self.consumed += len(raw)
                    if skip:
                        # Output a re-attached step repeats: it is in the log already.
                        cut = min(skip, len(chunk))
                        chunk, skip = chunk[cut:], skip - cut
                        if not chunk:
                            continue
                    clean = redacting.feed(chunk)
                    if writable:
                        writable = self._write(log, clean)
                    splitter.feed(clean)
                    now = time.monotonic()
                    if now - told >= CONSUMED_EVERY_S and self._tell_logged(log, redacting):
                        told = now
                    # A reader hands out what it holds without waiting, so a flooding step
                    # would keep the event loop for chunk after chunk: the chat goes first.
                    await self.foreground.step_aside()
                splitter.feed(self._write_rest(log, redacting, writable))
                splitter.flush()
                if not skip:
                    self._tell_logged(log, redacting)
            except asyncio.CancelledError:
                # Detached (colabot stops, the cluster runs on): what was read goes in the
                # log, so the next colabot goes on exactly after it.
                self._write_rest(log, redacting, writable)
                if not skip:  # still inside what the log already held: the old point stands
                    self._tell_logged(log, redacting)
                raise

    def _write_rest(self, log: BinaryIO, redacting: StreamRedactor, writable: bool) -> bytes:
        """Write what the redacting stream still holds back."""
        rest = redacting.flush()
        if writable:
            self._write(log, rest)
        return rest

    def _tell_logged(self, log: BinaryIO, redacting: StreamRedactor) -> bool:
        """Record a point where the log and the output agree: this many bytes of output are
        in the log, which is this long. A colabot killed later cuts the log back to it and
        reads on from there, so each line is logged once. Only between lines and outside a
        private key (whose next lines must be masked): False when not such a point."""
        if self.on_consumed is None or not redacting.settled:
            return False
        # Bookkeeping for re-attaching after a restart must never stop the step.
        with contextlib.suppress(Exception):
            self.on_consumed(self.consumed - redacting.held, log.tell())
        return True

    def _write(self, log: BinaryIO, data: bytes) -> bool:
        """Write to the log; on a full disk, stop the step and say so (False)."""
        try:
            log.write(data)
            log.flush()
        except OSError as exc:
            if exc.errno not in FULL_ERRNOS:
                raise
            self._disk_full.set()
            if self.on_disk_full is not None:
                self.on_disk_full()
            return False
        return True

    @staticmethod
    async def _watch(watcher: FileWatcher) -> None:
        while True:
            watcher.poll()
            await asyncio.sleep(WATCH_INTERVAL_S)


class Verdict(StrEnum):
    """What a step's end means for its job."""

    NEXT = "next"
    """It succeeded: the job goes on with its next step."""
    INTERRUPTED = "interrupted"
    """Lost with its cluster, or ended by it (preempted, a failed node): not the job's fault."""
    CANCELLED = "cancelled"
    """Someone cancelled the job."""
    LET_GO = "let go"
    """Stopped because colabot stops: the job is not ended here."""
    FAILED = "failed"


@dataclass(frozen=True)
class StepOutcome:
    """A step's end, decided: the verdict, and whether the disk was full (which then is the
    reason, and the kind is not asked to explain the failure)."""

    verdict: Verdict
    disk_full: bool = False


def step_outcome(result: StepResult, *, cancel_requested: bool, free_mb: float) -> StepOutcome:
    """The one decision from how a step ended to what happens to its job."""
    disk_full = result.disk_full or (not result.ok and free_mb < 1.0)
    if result.lost or (result.resumable and not result.cancelled):
        return StepOutcome(Verdict.INTERRUPTED, disk_full)
    if result.cancelled:
        return StepOutcome(Verdict.CANCELLED if cancel_requested else Verdict.LET_GO, disk_full)
    if not result.ok or disk_full:
        return StepOutcome(Verdict.FAILED, disk_full)
    return StepOutcome(Verdict.NEXT)
