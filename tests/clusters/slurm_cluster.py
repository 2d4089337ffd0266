"""A real one-machine Slurm cluster for tests: ``munged``, ``slurmctld`` and ``slurmd`` on
127.0.0.1, with a GPU gres backed by a dummy character device, all state in a private temp
dir, and free ports.

The daemons run in the foreground as children of this process; client commands find the
cluster through ``SLURM_CONF`` (see :meth:`SlurmCluster.environment`), and libmunge finds the
private munge socket through ``AuthInfo=socket=`` in that slurm.conf. Stopping cancels this
cluster's jobs, stops exactly the daemons it started, then kills the leftovers it can prove
are its own (they carry a marker variable naming its temp dir): never a machine-wide stop.

Needs root (munged and the job credentials) and the Debian packages ``slurm-wlm`` and
``munge``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.clusters.ports import free_ports

MARKER_ENV = "COLABOT_TEST_SLURM"
NODE = "node1"
PARTITION = "debug"
BASE_DIR = "/tmp/colabot-slurm"
DAEMONS = ("munged", "slurmctld", "slurmd")

SLURM_CONF = """\
ClusterName=colabottest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/run/slurmctld.pid
SlurmdPidFile={d}/run/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
PlugStackConfig={d}/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
ReturnToService=2
KillWait={kill_wait}
OverTimeLimit=0
{node_line}
PartitionName={partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""
NODE_LINE = (
    "NodeName={node} NodeHostname=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 "
    "Gres=gpu:{gpus} State=UNKNOWN"
)


class SlurmClusterError(RuntimeError):
    """The cluster did not start, or did not stop."""


def missing_requirement() -> str | None:
    """Why this machine cannot run the test cluster (None: it can)."""
    if os.geteuid() != 0:
        return "the test Slurm cluster needs root (munged and slurmd)"
    for program in (*DAEMONS, "sbatch", "squeue", "scontrol", "scancel", "sinfo"):
        if shutil.which(program) is None:
            return f"{program} is not installed (apt-get install slurm-wlm munge)"
    return None


class SlurmCluster:
    """One controller and one compute node (``node1``, partition ``debug``) on this machine."""

    def __init__(self, *, gpus: int = 1, cpus: int = 2, kill_wait: int = 5) -> None:
        Path(BASE_DIR).mkdir(parents=True, exist_ok=True)
        # Modes set, not left to the umask: colabot makes its test process's umask 077.
        Path(BASE_DIR).chmod(0o755)
        self.dir = Path(tempfile.mkdtemp(prefix="s_", dir=BASE_DIR))
        self.gpus = gpus
        self.cpus = cpus
        self.kill_wait = kill_wait
        self.ctld_port, self.slurmd_port = free_ports(2)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        # Found once: a test may empty PATH to see colabot without Slurm.
        self._programs = {
            name: shutil.which(name) or name
            for name in (*DAEMONS, "sbatch", "squeue", "scontrol", "scancel", "sinfo")
        }

    @property
    def conf(self) -> Path:
        """The cluster's slurm.conf."""
        return self.dir / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        """The private munge socket."""
        return self.dir / "munge" / "munge.socket"

    def environment(self) -> dict[str, str]:
        """Our environment pointed at this cluster, with the marker its processes carry."""
        return {**os.environ, "SLURM_CONF": str(self.conf), MARKER_ENV: str(self.dir)}

    def run(self, *argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """A Slurm client command against this cluster."""
        return subprocess.run(
            [self._programs.get(argv[0], argv[0]), *argv[1:]],
            env=self.environment(),
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    # start ---------------------------------------------------------------------------------

    def _write_files(self) -> None:
        d = self.dir
        d.chmod(0o755)  # munged wants o+x on every folder above its socket
        for sub in ("state", "spool", "run", "log", "dev", "munge", "key"):
            (d / sub).mkdir(exist_ok=True)
            (d / sub).chmod(0o755)
        (d / "key").chmod(0o700)
        key = d / "key" / "munge.key"
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(os.urandom(1024))
        gres = ["AutoDetect=off\n"]
        for index in range(self.gpus):
            # A dummy "GPU": a character device like /dev/null, so --gres=gpu:1 is real.
            device = d / "dev" / f"gpu{index}"
            os.mknod(device, 0o666 | 0o020000, os.makedev(1, 3))
            gres.append(f"NodeName={NODE} Name=gpu File={device}\n")
        (d / "gres.conf").write_text("".join(gres))
        (d / "plugstack.conf").write_text("")
        self.conf.write_text(
            SLURM_CONF.format(
                d=d,
                host=socket.gethostname().split(".")[0],
                ctld_port=self.ctld_port,
                slurmd_port=self.slurmd_port,
                munge_socket=self.munge_socket,
                kill_wait=self.kill_wait,
                node=NODE,
                partition=PARTITION,
                node_line=NODE_LINE.format(node=NODE, cpus=self.cpus, gpus=self.gpus),
            )
        )

    def _argv(self, name: str) -> list[str]:
        d = self.dir
        if name == "munged":
            return [
                "munged",
                "--foreground",
                f"--socket={self.munge_socket}",
                f"--key-file={d / 'key' / 'munge.key'}",
                f"--pid-file={d / 'run' / 'munged.pid'}",
                f"--seed-file={d / 'key' / 'munged.seed'}",
                f"--log-file={d / 'log' / 'munged.log'}",
            ]
        if name == "slurmctld":
            return ["slurmctld", "-D", "-f", str(self.conf)]
        return ["slurmd", "-D", "-f", str(self.conf), "-N", NODE]

    def _spawn(self, name: str) -> None:
        with (self.dir / "log" / f"{name}.out").open("ab") as out:
            argv = self._argv(name)
            self._procs[name] = subprocess.Popen(
                [self._programs[argv[0]], *argv[1:]],
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait(self, what: str, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise SlurmClusterError(
                        f"{name} exited ({proc.returncode}): {self.log_tail(name)}"
                    )
            if ready():
                return
            time.sleep(0.1)
        raise SlurmClusterError(f"timed out waiting for {what}: {self.log_tail('slurmctld')}")

    def _controller_up(self) -> bool:
        return "is UP" in self.run("scontrol", "ping").stdout

    def node_state(self) -> str:
        """The node's state as sinfo tells it (``idle``, ``mixed``...)."""
        return self.run("sinfo", "-h", "-n", NODE, "-o", "%T").stdout.strip()

    def start(self, timeout: float = 60.0) -> SlurmCluster:
        """Start the daemons; return once the node takes jobs."""
        try:
            self._write_files()
            self._spawn("munged")
            self._wait("the munge socket", self.munge_socket.exists, timeout)
            self._spawn("slurmctld")
            self._wait("slurmctld", self._controller_up, timeout)
            self._spawn("slurmd")
            self._wait("the node", lambda: self.node_state() in ("idle", "mixed"), timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The end of a daemon's log, for a failure message."""
        texts = []
        for path in (self.dir / "log" / f"{name}.log", self.dir / "log" / f"{name}.out"):
            with contextlib.suppress(OSError):
                texts.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(texts)

    # jobs ----------------------------------------------------------------------------------

    def state(self, job_id: str) -> str:
        """A job's state (``RUNNING``...) while the controller remembers it, else ''."""
        out = self.run("scontrol", "-o", "show", "job", job_id).stdout
        for word in out.split():
            if word.startswith("JobState="):
                return word.split("=", 1)[1]
        return ""

    def jobs(self) -> list[tuple[str, str, str]]:
        """Every job the controller remembers: (id, name, state)."""
        out = self.run("scontrol", "-o", "show", "job").stdout
        found = []
        for line in out.splitlines():
            fields = dict(w.split("=", 1) for w in line.split() if "=" in w)
            if "JobId" in fields:
                found.append((fields["JobId"], fields.get("JobName", ""), fields["JobState"]))
        return found

    def cancel_all(self, timeout: float = 30.0) -> None:
        """Cancel every job of this cluster and wait until the queue is empty."""
        self.run("scancel", "--user=root")  # this cluster's jobs only (SLURM_CONF)
        deadline = time.monotonic() + timeout
        while self.run("squeue", "-h").stdout.strip() and time.monotonic() < deadline:
            time.sleep(0.2)

    # stop ----------------------------------------------------------------------------------

    def _leftovers(self) -> list[int]:
        """Processes carrying this cluster's marker (slurmstepd, job steps) and their
        descendants."""
        marker = f"{MARKER_ENV}={self.dir}".encode()
        parents: dict[int, int] = {}
        found: set[int] = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
                if marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    found.add(pid)
            except (OSError, ValueError, IndexError):
                continue
        while True:
            more = {pid for pid, parent in parents.items() if parent in found} - found
            if not more:
                break
            found |= more
        found.discard(os.getpid())
        return sorted(found)

    def _stop_daemon(self, name: str) -> None:
        proc = self._procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        """Cancel this cluster's jobs, stop its daemons and whatever they left; remove its
        folder. Raise if anything of it survives."""
        if "slurmctld" in self._procs and self._procs["slurmctld"].poll() is None:
            self.cancel_all(timeout=15)
        for name in reversed(DAEMONS):
            self._stop_daemon(name)
        for _ in range(3):
            leftovers = self._leftovers()
            if not leftovers:
                break
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        survivors = self._leftovers()
        if survivors:
            raise SlurmClusterError(f"processes of {self.dir} survived: {survivors}")
        shutil.rmtree(self.dir, ignore_errors=True)
