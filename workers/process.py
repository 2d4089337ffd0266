"""Run one argv in its own process group: output to a log file, lines to a hook, cancel, timeout.

Output is streamed in bounded chunks, redacted, to the log file and never accumulated; only
the last few lines are kept, to explain a failure. A full disk stops the step with that
reason instead of leaving it hanging on a pipe nobody reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from workers.containment import StepProcesses, kill_group
from workers.redaction import SECRETS, Redactor

__all__ = [
    "Grace",
    "LineHook",
    "ProcessResult",
    "ProcessRun",
    "describe_exit",
    "format_seconds",
    "kill_group",
]

CHUNK_BYTES = 64 * 1024
MAX_HOOK_LINE = 8 * 1024
TAIL_LINES = 40
WATCH_INTERVAL_S = 1.0
# How long the output pipe may stay open after the main process has exited: a descendant
# that left the process group can hold it open for ever.
PIPE_GRACE_S = 2.0

LineHook = Callable[[str, str], None]
"""Called with (source, line): source is ``"output"`` or the name of a watched file."""


@dataclass(frozen=True)
class Grace:
    """Seconds to wait after SIGINT and after SIGTERM before escalating."""

    after_interrupt: float = 10.0
    after_terminate: float = 5.0


@dataclass(frozen=True)
class ProcessResult:
    """How a process ended. ``reason`` is None exactly when it succeeded."""

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

    @property
    def ok(self) -> bool:
        """True when the process exited 0 and was neither cancelled nor timed out."""
        return self.reason is None


SIGNAL_MEANINGS = {
    signal.SIGKILL: "killed (SIGKILL), often the kernel's out-of-memory killer",
    signal.SIGSEGV: "crashed with a segmentation fault (SIGSEGV)",
    signal.SIGABRT: "aborted (SIGABRT)",
    signal.SIGBUS: "crashed with a bus error (SIGBUS)",
    signal.SIGTERM: "terminated (SIGTERM)",
    signal.SIGINT: "interrupted (SIGINT)",
    signal.SIGHUP: "hung up (SIGHUP)",
    signal.SIGPIPE: "broken pipe (SIGPIPE)",
}

EXIT_MEANINGS = {
    126: "a command could not be executed (permission denied?)",
    127: "a command was not found",
    137: "killed (exit 137), often the out-of-memory killer",
    139: "crashed with a segmentation fault (exit 139)",
}


def describe_exit(
    returncode: int | None, *, cancelled: bool = False, timed_out: float | None = None
) -> str | None:
    """A plain-words reason for how a process ended, or None when it succeeded."""
    if timed_out is not None:
        return f"timed out after {format_seconds(timed_out)}"
    if cancelled:
        return "cancelled"
    if returncode is None:
        return "ended without an exit status"
    if returncode == 0:
        return None
    if returncode < 0:
        sig = -returncode
        try:
            meaning = SIGNAL_MEANINGS.get(signal.Signals(sig))
            name = signal.Signals(sig).name
        except ValueError:
            meaning, name = None, f"signal {sig}"
        return meaning or f"killed by {name}"
    extra = EXIT_MEANINGS.get(returncode)
    return f"exited with code {returncode}" + (f": {extra}" if extra else "")


def format_seconds(seconds: float) -> str:
    """``75`` -> ``1m 15s``; ``3700`` -> ``1h 1m``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


class _LineSplitter:
    """Turns byte chunks into text lines; ``\\r`` counts as a line end (progress bars)."""

    def __init__(self, source: str, hook: LineHook | None, tail: deque[str]) -> None:
        self._source = source
        self._hook = hook
        self._tail = tail
        self._pending = b""

    def feed(self, chunk: bytes) -> None:
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


class _FileWatcher:
    """Follows files a process writes (such as a CSV log) and feeds their new lines."""

    def __init__(self, paths: Sequence[Path], hook: LineHook | None) -> None:
        self._paths = list(paths)
        self._offsets: dict[Path, int] = {}
        self._splitters = {p: _LineSplitter(p.name, hook, deque(maxlen=1)) for p in paths}

    def poll(self) -> None:
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


class ProcessRun:
    """One subprocess, started from an argv list (never a shell) in a new process group.

    Its output is redacted as it is written to the log. The step is over once the main
    process has exited and a short grace has passed, even if a descendant that left the
    group still holds the output pipe; cancel, timeout and the end of the step then stop
    every process of the step (see :mod:`workers.containment`).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        on_line: LineHook | None = None,
        watch: Sequence[Path] = (),
        timeout_s: float | None = None,
        grace: Grace | None = None,
        on_start: Callable[[int], None] | None = None,
        redactor: Redactor = SECRETS,
        cgroup_root: Path | None = None,
        on_disk_full: Callable[[], None] | None = None,
    ) -> None:
        if not argv:
            raise ValueError("argv must not be empty")
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.on_line = on_line
        self.watch = list(watch)
        self.timeout_s = timeout_s
        self.grace = grace or Grace()
        self.on_start = on_start
        self.redactor = redactor
        self.processes = StepProcesses(cgroup_root)
        self.on_disk_full = on_disk_full
        self._cancel = asyncio.Event()
        self._disk_full = asyncio.Event()
        self._adoption: asyncio.Future[None] | None = None
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)

    def cancel(self) -> None:
        """Ask the process to stop: SIGINT, then SIGTERM, then SIGKILL to its group."""
        self._cancel.set()

    async def run(self) -> ProcessResult:
        """Start the process, stream its output, and wait for it to end."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**(self.env if self.env is not None else os.environ), **self.processes.environment()}
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                cwd=self.cwd,
                env=env,
                start_new_session=True,
            )
        except FileNotFoundError:
            return self._not_started(
                read_fd, f"cannot start {self.argv[0]!r}: executable not found"
            )
        except PermissionError:
            return self._not_started(read_fd, f"cannot start {self.argv[0]!r}: permission denied")
        except OSError as exc:
            return self._not_started(
                read_fd, f"cannot start {self.argv[0]!r}: {exc.strerror or exc}"
            )
        finally:
            os.close(write_fd)
        started_at = time.time()
        self.processes.started(proc.pid)
        if self.on_start is not None:
            self.on_start(proc.pid)
        self._adoption = asyncio.ensure_future(asyncio.to_thread(self.processes.adopt, proc.pid))
        reader, transport = await _open_pipe(read_fd)
        pump = asyncio.create_task(self._pump(reader))
        file_watcher = _FileWatcher(self.watch, self.on_line)
        watcher = asyncio.create_task(self._watch(file_watcher)) if self.watch else None
        try:
            cancelled, timed_out = await self._supervise(proc)
        finally:
            # Strays would keep the pipe open and the GPU busy, inside the group or not.
            await self._adopted()
            self.processes.kill_all()
            if watcher is not None:
                watcher.cancel()
        await self._drain(pump, transport)
        self.processes.close()
        if watcher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            file_watcher.poll()
        ended_at = time.time()
        disk_full = self._disk_full.is_set()
        reason = (
            "disk full"
            if disk_full
            else describe_exit(
                proc.returncode,
                cancelled=cancelled,
                timed_out=self.timeout_s if timed_out else None,
            )
        )
        return ProcessResult(
            returncode=proc.returncode,
            reason=reason,
            tail=list(self._tail),
            cancelled=cancelled and not disk_full,
            timed_out=timed_out,
            pid=proc.pid,
            started_at=started_at,
            ended_at=ended_at,
            disk_full=disk_full,
        )

    def _not_started(self, read_fd: int, reason: str) -> ProcessResult:
        os.close(read_fd)
        with self.log_path.open("ab") as log:
            log.write(f"colabot: {reason}\n".encode())
        return ProcessResult(returncode=None, reason=reason, tail=[reason], started=False)

    async def _supervise(self, proc: asyncio.subprocess.Process) -> tuple[bool, bool]:
        """Wait for the main process, a cancel, a full disk or the timeout; stop it if need be.

        Returns (cancelled, timed out).
        """
        waiter = asyncio.create_task(proc.wait())
        cancel = asyncio.create_task(self._cancel.wait())
        disk_full = asyncio.create_task(self._disk_full.wait())
        try:
            done, _ = await asyncio.wait(
                {waiter, cancel, disk_full},
                timeout=self.timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:
            await self._stop(waiter)
            raise
        finally:
            cancel.cancel()
            disk_full.cancel()
        if waiter in done:
            return False, False
        await self._stop(waiter)
        stopped = cancel in done or disk_full in done
        return stopped, not stopped

    async def _adopted(self) -> None:
        """Wait until the step's processes are in its cgroup (if it has one)."""
        if self._adoption is not None:
            await asyncio.shield(self._adoption)

    async def _stop(self, waiter: asyncio.Task[int]) -> None:
        await self._adopted()
        steps = (
            (signal.SIGINT, self.grace.after_interrupt),
            (signal.SIGTERM, self.grace.after_terminate),
            (signal.SIGKILL, 30.0),
        )
        for sig, wait_s in steps:
            if not self.processes.signal(sig):
                break
            done, _ = await asyncio.wait({waiter}, timeout=wait_s)
            if done:
                break
        await asyncio.shield(waiter)

    async def _drain(self, pump: asyncio.Task[None], transport: asyncio.ReadTransport) -> None:
        """Let the pump read what is left; give up on a pipe a stray still holds open."""
        try:
            await asyncio.wait_for(asyncio.shield(pump), timeout=PIPE_GRACE_S)
        except TimeoutError:
            transport.close()
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        finally:
            transport.close()

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        splitter = _LineSplitter("output", self.on_line, self._tail)
        redacting = self.redactor.stream()
        with self.log_path.open("ab") as log:
            writable = True
            while True:
                chunk = await reader.read(CHUNK_BYTES)
                if not chunk:
                    break
                clean = redacting.feed(chunk)
                if writable:
                    writable = self._write(log, clean)
                splitter.feed(clean)
            rest = redacting.flush()
            if writable:
                self._write(log, rest)
            splitter.feed(rest)
            splitter.flush()

    def _write(self, log: BinaryIO, data: bytes) -> bool:
        """Write to the log; on a full disk, stop the step and say so (False)."""
        try:
            log.write(data)
            log.flush()
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            self._disk_full.set()
            if self.on_disk_full is not None:
                self.on_disk_full()
            return False
        return True

    @staticmethod
    async def _watch(watcher: _FileWatcher) -> None:
        while True:
            watcher.poll()
            await asyncio.sleep(WATCH_INTERVAL_S)


async def _open_pipe(read_fd: int) -> tuple[asyncio.StreamReader, asyncio.ReadTransport]:
    """An asyncio reader over the read end of the step's output pipe, which colabot owns."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=CHUNK_BYTES)
    pipe = os.fdopen(read_fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader, transport
