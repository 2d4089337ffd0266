"""Keeping every process of a job step together, so that cancel and stop end all of them.

A step runs in its own process group, but a descendant can leave the group (``setsid``, a
daemon) and keep running, holding the GPU and the step's output pipe. Two ways find those:

- a cgroup v2 of its own per step, where the machine lets colabot make one (root on most
  Linux machines): the kernel keeps every descendant in it, whatever it does;
- otherwise a marker in the step's environment, which descendants inherit: every process
  carrying it belongs to the step, even after it was re-parented to init.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
from collections.abc import Iterable
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

MARK_VARIABLE = "COLABOT_STEP_MARK"
CGROUP_ROOTS = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))
CGROUP_FOLDER = "colabot"


def find_cgroup_root(candidates: Iterable[Path] = CGROUP_ROOTS) -> Path | None:
    """A writable cgroup v2 hierarchy (one with ``cgroup.kill``), or None."""
    for root in candidates:
        if not (root / "cgroup.procs").is_file() or not (root / "cgroup.controllers").exists():
            continue
        folder = root / CGROUP_FOLDER
        try:
            folder.mkdir(exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            for old in folder.glob("step-*"):
                with contextlib.suppress(OSError):
                    old.rmdir()  # only empty ones go: a step still running keeps its own
            return folder
    return None


def processes_marked(mark: str) -> list[psutil.Process]:
    """Every process whose environment carries ``COLABOT_STEP_MARK=<mark>``."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARK_VARIABLE) == mark:
                found.append(process)
        except (psutil.Error, OSError):
            continue
    return found


def send(pids: Iterable[int], sig: signal.Signals) -> int:
    """Send ``sig`` to each pid; return how many were still there."""
    reached = 0
    for pid in pids:
        try:
            os.kill(pid, sig)
            reached += 1
        except (ProcessLookupError, PermissionError):
            continue
    return reached


def kill_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to a whole process group; False if it is already gone."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class StepProcesses:
    """The processes of one step: its group, plus its cgroup or its environment marker."""

    def __init__(self, cgroup_root: Path | None = None, mark: str | None = None) -> None:
        self.mark = mark or secrets.token_hex(8)
        self.group: int | None = None
        self.cgroup: Path | None = None
        self.adopted = False
        if cgroup_root is not None:
            folder = cgroup_root / f"step-{self.mark}"
            try:
                folder.mkdir()
                self.cgroup = folder
            except OSError as exc:
                log.debug("no cgroup for the step (%s); using its environment marker", exc)

    def environment(self) -> dict[str, str]:
        """What the step's environment must carry to be found again."""
        return {MARK_VARIABLE: self.mark}

    def started(self, pid: int) -> None:
        """The step's main process started (it leads its own process group)."""
        self.group = pid

    def adopt(self, pid: int) -> None:
        """Move the step's main process, and anything it already started, into its cgroup.

        Blocking (a cgroup move can take milliseconds): run it in a thread. The move happens
        after the process started, so descendants it forked first are found by their marker
        and moved too; from then on the kernel keeps every new one in the cgroup.
        """
        if self.cgroup is None:
            return
        procs = self.cgroup / "cgroup.procs"
        try:
            for member in [pid, *(p.pid for p in processes_marked(self.mark) if p.pid != pid)]:
                with contextlib.suppress(ProcessLookupError):
                    procs.write_text(str(member))
        except OSError as exc:
            log.debug("could not move the step into its cgroup (%s); using its marker", exc)
            return
        self.adopted = True

    def members(self) -> list[int]:
        """Pids of every process of the step still alive, inside its group or not.

        Both ways are asked when the step has a cgroup: the cgroup holds descendants that
        cleared their environment, the marker those that forked before the move finished.
        """
        found = {process.pid for process in processes_marked(self.mark)}
        if self.cgroup is not None and self.adopted:
            with contextlib.suppress(OSError):
                found.update(int(pid) for pid in (self.cgroup / "cgroup.procs").read_text().split())
        return sorted(found)

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to the group and to members that left it; False when none is left."""
        reached = self.group is not None and kill_group(self.group, sig)
        return send(self._strays(), sig) > 0 or reached

    def _strays(self) -> list[int]:
        """Members outside the step's process group (the group gets its signal as one)."""
        strays = []
        for pid in self.members():
            try:
                if pid != os.getpid() and os.getpgid(pid) != self.group:
                    strays.append(pid)
            except ProcessLookupError:
                continue
        return strays

    def kill_all(self) -> None:
        """SIGKILL every process of the step."""
        if self.cgroup is not None and self.adopted:
            with contextlib.suppress(OSError):
                (self.cgroup / "cgroup.kill").write_text("1")
        self.signal(signal.SIGKILL)

    def close(self) -> None:
        """Remove the step's cgroup once it is empty (a non-empty one is left for later)."""
        if self.cgroup is None:
            return
        with contextlib.suppress(OSError):
            self.cgroup.rmdir()
