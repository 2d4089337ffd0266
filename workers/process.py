"""Run one argv in its own process group: output to a log file, lines to a hook, cancel, timeout.

Output is streamed in bounded chunks straight to the log file and never accumulated; only the
last few lines are kept, to explain a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CHUNK_BYTES = 64 * 1024
MAX_HOOK_LINE = 8 * 1024
TAIL_LINES = 40
WATCH_INTERVAL_S = 1.0

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
        parts = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        self._pending = parts.pop()
        while len(self._pending) > MAX_HOOK_LINE:
            # A line without an end in sight: hand it over in pieces rather than hoard it.
            parts.append(self._pending[:MAX_HOOK_LINE])
            self._pending = self._pending[MAX_HOOK_LINE:]
        for raw in parts:
            if raw:
                self._emit(raw)

    def flush(self) -> None:
        if self._pending:
            self._emit(self._pending)
            self._pending = b""

    def _emit(self, raw: bytes) -> None:
        line = raw[:MAX_HOOK_LINE].decode("utf-8", errors="replace")
        self._tail.append(line)
        if self._hook is not None:
            # A progress parser must never kill the run.
            with contextlib.suppress(Exception):
                self._hook(self._source, line)


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


def kill_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to a whole process group; False if it is already gone."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class ProcessRun:
    """One subprocess, started from an argv list (never a shell) in a new process group."""

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
        self._cancel = asyncio.Event()
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)

    def cancel(self) -> None:
        """Ask the process to stop: SIGINT, then SIGTERM, then SIGKILL to its group."""
        self._cancel.set()

    async def run(self) -> ProcessResult:
        """Start the process, stream its output, and wait for it to end."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
            )
        except FileNotFoundError:
            return self._not_started(f"cannot start {self.argv[0]!r}: executable not found")
        except PermissionError:
            return self._not_started(f"cannot start {self.argv[0]!r}: permission denied")
        except OSError as exc:
            return self._not_started(f"cannot start {self.argv[0]!r}: {exc.strerror or exc}")
        started_at = time.time()
        if self.on_start is not None:
            self.on_start(proc.pid)
        pump = asyncio.create_task(self._pump(proc))
        file_watcher = _FileWatcher(self.watch, self.on_line)
        watcher = asyncio.create_task(self._watch(file_watcher)) if self.watch else None
        try:
            cancelled, timed_out = await self._supervise(proc)
        finally:
            # Strays left in the group would keep the pipe open and the GPU busy.
            kill_group(proc.pid, signal.SIGKILL)
            if watcher is not None:
                watcher.cancel()
        try:
            await asyncio.wait_for(pump, timeout=10)
        except TimeoutError:
            pump.cancel()
        if watcher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            file_watcher.poll()
        ended_at = time.time()
        reason = describe_exit(
            proc.returncode,
            cancelled=cancelled,
            timed_out=self.timeout_s if timed_out else None,
        )
        return ProcessResult(
            returncode=proc.returncode,
            reason=reason,
            tail=list(self._tail),
            cancelled=cancelled,
            timed_out=timed_out,
            pid=proc.pid,
            started_at=started_at,
            ended_at=ended_at,
        )

    def _not_started(self, reason: str) -> ProcessResult:
        with self.log_path.open("ab") as log:
            log.write(f"colabot: {reason}\n".encode())
        return ProcessResult(returncode=None, reason=reason, tail=[reason], started=False)

    async def _supervise(self, proc: asyncio.subprocess.Process) -> tuple[bool, bool]:
        waiter = asyncio.create_task(proc.wait())
        cancel = asyncio.create_task(self._cancel.wait())
        try:
            done, _ = await asyncio.wait(
                {waiter, cancel}, timeout=self.timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            await self._stop(proc, waiter)
            raise
        finally:
            cancel.cancel()
        if waiter in done:
            return False, False
        await self._stop(proc, waiter)
        return cancel in done, cancel not in done

    async def _stop(self, proc: asyncio.subprocess.Process, waiter: asyncio.Task[int]) -> None:
        steps = (
            (signal.SIGINT, self.grace.after_interrupt),
            (signal.SIGTERM, self.grace.after_terminate),
            (signal.SIGKILL, 30.0),
        )
        for sig, wait_s in steps:
            if not kill_group(proc.pid, sig):
                break
            done, _ = await asyncio.wait({waiter}, timeout=wait_s)
            if done:
                break
        await asyncio.shield(waiter)

    async def _pump(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        splitter = _LineSplitter("output", self.on_line, self._tail)
        with self.log_path.open("ab") as log:
            while True:
                chunk = await proc.stdout.read(CHUNK_BYTES)
                if not chunk:
                    break
                log.write(chunk)
                splitter.feed(chunk)
            splitter.flush()

    @staticmethod
    async def _watch(watcher: _FileWatcher) -> None:
        while True:
            watcher.poll()
            await asyncio.sleep(WATCH_INTERVAL_S)
