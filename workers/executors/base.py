"""The seam between the job runner and whatever runs a step: this machine, a Ray cluster or
a Slurm cluster.

The runner hands an :class:`Executor` a :class:`Launch` (argv, environment, working folder,
GPUs wanted) and gets a :class:`StepHandle` back. From the handle it reads the step's raw
output as it comes, waits for its end, asks it to stop with the staged grace, and learns
whether it is still waiting for resources. The handle's :attr:`StepHandle.ref` is the
executor's own name for the step, stored with the job, so a restarted colabot can
:meth:`Executor.reattach` to a step that outlived it.

Everything else (the job log, redaction, progress, timeouts, a full disk) is the runner's,
the same for every executor.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Grace:
    """Seconds to wait after SIGINT and after SIGTERM before escalating."""

    after_interrupt: float = 10.0
    after_terminate: float = 5.0


@dataclass(frozen=True)
class Launch:
    """One step to start: what to run, where, with which environment and resources."""

    job_id: int
    index: int
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path
    wants_gpu: bool = False
    attempt: int = 1
    job_dir: Path | None = None
    """The job's own folder, where an executor keeps its files for the step (the step's
    working folder can be an input folder, which colabot never writes to)."""

    @property
    def label(self) -> str:
        """``job 12 step 3 (train)``: the step's name for people and cluster job names."""
        return f"job {self.job_id} step {self.index + 1} ({self.name})"


@dataclass(frozen=True)
class Exit:
    """How a step ended, as its executor saw it.

    ``reason`` is the executor's words when it knows more than the exit code (a cluster
    time limit, a node failure); ``lost`` means the executor lost track of the step (its
    cluster went away), so the job is interrupted, not failed; ``resumable`` offers /resume
    for a failure that was not the step's fault (preemption).
    """

    returncode: int | None
    reason: str | None = None
    lost: bool = False
    resumable: bool = False
    note: str | None = None
    """Something people should hear about the end (a step that would not stop)."""


@dataclass(frozen=True)
class Placement:
    """Where a step is: waiting for resources (and why), or running (and on which node,
    and until when the cluster lets it run: its time limit); on a cluster, which cluster
    and the cluster's own name for the step, as people would look it up there."""

    waiting: str | None = None
    node: str | None = None
    ends_at: float | None = None
    cluster: str = ""
    """The cluster in words (``Ray``, ``Slurm``); '' on this machine."""
    job: str = ""
    """The cluster's own id of the step (a Ray submission id, a Slurm job id)."""


@dataclass(frozen=True)
class Capacity:
    """What an executor's machines offer, for /runtime and ``colabot check``."""

    name: str
    nodes: int
    gpus: int
    free_gpus: int | None = None
    cpus: int | None = None
    free_cpus: int | None = None
    version: str = ""
    largest_node_gpus: int | None = None
    details: tuple[str, ...] = field(default=())


class StepHandle(Protocol):
    """A started step."""

    @property
    def ref(self) -> dict[str, Any]:
        """The executor's reference to the step, JSON-ready, to re-attach after a restart."""
        ...

    @property
    def pid(self) -> int | None:
        """The step's process id when it runs on this machine."""
        ...

    @property
    def output_grace_s(self) -> float:
        """How long the output may go on arriving after the step ended (a cluster's log
        stream lags its job; a local pipe a stray process holds would stay open for ever)."""
        ...

    def output(self) -> AsyncIterator[bytes]:
        """The step's raw output (stdout and stderr together), as it comes, until it ends."""
        ...

    async def wait(self) -> Exit:
        """Wait for the step to end."""
        ...

    async def stop(self, grace: Grace) -> None:
        """Stop the step: SIGINT, then SIGTERM after ``grace``, then kill; return once it
        ended (or the executor gave up on it)."""
        ...

    def placement(self) -> Placement:
        """Whether the step waits for resources or runs, as last seen."""
        ...

    async def close(self) -> None:
        """Release what the handle holds (pipes, sockets); the step has ended."""
        ...


class Executor(Protocol):
    """Starts steps somewhere, and finds them again after a restart."""

    name: str
    survives_restart: bool
    """Whether its steps keep running while colabot restarts (a cluster's do)."""
    runs_here: bool
    """Whether its steps run on this machine, where they reach colabot's loopback sockets."""

    async def start(self, launch: Launch) -> StepHandle:
        """Start a step; raise StartError when it cannot be started."""
        ...

    async def reattach(self, ref: Mapping[str, Any], launch: Launch) -> StepHandle | None:
        """The handle of a step a previous colabot started. None when this executor's steps
        cannot outlive colabot (whatever it left is then stopped); StepLostError when the
        step is gone for a reason people should hear."""
        ...

    async def capacity(self) -> Capacity | None:
        """What the executor's machines offer now; None when it has nothing to say."""
        ...

    def gpus_held(self, launch: Launch) -> float:
        """How many GPUs the step holds while it runs, for accounting (0: CPUs only)."""
        ...

    async def close(self) -> None:
        """Release the executor's connections."""
        ...


PROBE_NAME = ".colabot-cluster-probe"
"""The start of the name of the file a cluster's probe job writes in a shared folder."""


def take_probe_file(path: Path) -> str:
    """The text a probe job wrote at ``path``, which is then removed ('' when it is not
    there: the cluster does not share the folder)."""
    try:
        return path.read_text()
    except OSError:
        return ""
    finally:
        path.unlink(missing_ok=True)


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
