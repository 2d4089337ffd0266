"""Steps on this machine: one argv in its own process group, never through a shell.

The step's output goes through a pipe colabot owns. Every process of the step is found and
stopped at its end, inside the process group or not (see :mod:`workers.executors.containment`). A
step cannot outlive colabot here: after a restart, whatever a crashed colabot left behind
is stopped, and the job is interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.errors import StartError
from workers.executors.base import Capacity, Exit, Grace, Launch, Placement, describe_exit
from workers.executors.containment import StepProcesses, processes_marked
from workers.safety.redaction import SECRETS

log = logging.getLogger(__name__)

CHUNK_BYTES = 32 * 1024
"""Output is read and handled this much at a time: each chunk is one turn of the event loop,
which a command's answer may wait for. 32 KB keeps that turn near a quarter of a millisecond
(64 KB took 0.65 ms) at a flood's full throughput (bench.output_flood)."""
READ_AHEAD_BYTES = 64 * 1024
"""The reader stops reading the pipe when it holds about twice this. Small (as small as a
chunk), it stopped and started again for every chunk: a tenth of a flood's throughput."""
# How long the output pipe may stay open after the main process has exited.
PIPE_GRACE_S = 2.0


class LocalExecutor:
    """Runs each step as a process group on this machine."""

    name = "local"
    survives_restart = False
    runs_here = True

    def __init__(self, cgroup_root: Path | None = None, gpus: int = 0) -> None:
        self.cgroup_root = cgroup_root
        self.gpus = gpus
        """The GPUs this machine gives its steps (each step that wants one sees them all)."""

    def gpus_held(self, launch: Launch) -> float:
        """This machine's GPUs, for a step that wants one."""
        return float(self.gpus) if launch.wants_gpu else 0.0

    async def start(self, launch: Launch) -> LocalStep:
        """Start the step's argv; raise StartError when it cannot start."""
        argv = list(launch.argv)
        if not argv:
            raise StartError(launch.name, "the step has no command")
        processes = StepProcesses(self.cgroup_root)
        env = {**launch.env, **processes.environment()}
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                cwd=launch.cwd,
                env=env,
                start_new_session=True,
            )
        except FileNotFoundError:
            os.close(read_fd)
            raise StartError(argv[0], f"cannot start {argv[0]!r}: executable not found") from None
        except PermissionError:
            os.close(read_fd)
            raise StartError(argv[0], f"cannot start {argv[0]!r}: permission denied") from None
        except OSError as exc:
            os.close(read_fd)
            why = exc.strerror or str(exc)
            raise StartError(argv[0], f"cannot start {argv[0]!r}: {why}") from None
        finally:
            os.close(write_fd)
        processes.started(proc.pid)
        reader, transport = await _open_pipe(read_fd)
        return LocalStep(proc, processes, reader, transport)

    async def reattach(self, ref: Mapping[str, Any], launch: Launch) -> None:
        """A local step dies with colabot's pipe: stop what a crashed colabot left running."""
        mark = ref.get("mark")
        if isinstance(mark, str) and mark:
            for process in processes_marked(mark):
                with contextlib.suppress(Exception):
                    process.kill()
                    log.info("stopped a leftover process of job %s", launch.job_id)
        return None

    async def capacity(self) -> Capacity | None:
        """This machine is described by /runtime itself."""
        return None

    async def close(self) -> None:
        """Nothing to release."""


class LocalStep:
    """A running process group and the read end of its output pipe."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        processes: StepProcesses,
        reader: asyncio.StreamReader,
        transport: asyncio.ReadTransport,
    ) -> None:
        self._proc = proc
        self.processes = processes
        self._reader = reader
        self._transport = transport
        # Joining the step's cgroup happens in a thread: it must not hold up the event loop.
        self._adoption = asyncio.ensure_future(asyncio.to_thread(processes.adopt, proc.pid))

    @property
    def ref(self) -> dict[str, Any]:
        """The process id and the environment mark its descendants carry."""
        return {"pid": self._proc.pid, "mark": self.processes.mark}

    @property
    def pid(self) -> int:
        """The main process's id."""
        return self._proc.pid

    @property
    def output_grace_s(self) -> float:
        """A descendant that left the process group can hold the pipe open for ever."""
        return PIPE_GRACE_S

    async def output(self) -> AsyncIterator[bytes]:
        """Chunks from the pipe until every writer has closed it."""
        while True:
            chunk = await self._reader.read(CHUNK_BYTES)
            if not chunk:
                return
            yield chunk

    async def wait(self) -> Exit:
        """Wait for the main process; then stop every other process of the step (strays
        would keep the pipe open and the GPU busy)."""
        returncode = await self._proc.wait()
        await self._adopted()
        self.processes.kill_all()
        return Exit(returncode)

    async def stop(self, grace: Grace) -> None:
        """SIGINT, SIGTERM, SIGKILL to every process of the step, with the grace between."""
        await self._adopted()
        waiter = asyncio.ensure_future(self._proc.wait())
        steps = (
            (signal.SIGINT, grace.after_interrupt),
            (signal.SIGTERM, grace.after_terminate),
            (signal.SIGKILL, 30.0),
        )
        for sig, wait_s in steps:
            if not self.processes.signal(sig):
                break
            done, _ = await asyncio.wait({waiter}, timeout=wait_s)
            if done:
                break
        await asyncio.shield(waiter)
        await self._adopted()
        self.processes.kill_all()

    def placement(self) -> Placement:
        """Always running, here."""
        return Placement()

    async def close(self) -> None:
        """Close the pipe and the step's cgroup."""
        self._transport.close()
        await self._adopted()
        self.processes.kill_all()
        self.processes.close()

    async def _adopted(self) -> None:
        """Wait until the step's processes are in its cgroup (if it has one)."""
        await asyncio.shield(self._adoption)


async def _open_pipe(read_fd: int) -> tuple[asyncio.StreamReader, asyncio.ReadTransport]:
    """An asyncio reader over the read end of the step's output pipe, which colabot owns."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_AHEAD_BYTES)
    pipe = os.fdopen(read_fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader, transport


BRIEF_TAIL_LINES = 12


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
    lines = [line for line in text.splitlines() if line.strip()][-BRIEF_TAIL_LINES:]
    reason = describe_exit(process.returncode) or "it succeeded"
    return BriefEnd(process.returncode, reason, lines)
