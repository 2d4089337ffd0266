"""A real, private Ray head on 127.0.0.1 for tests: its own temp dir, free ports, logical
GPUs and token auth. It stops exactly the processes it started, never a machine-wide
``ray stop``.

Every process of the head, job entrypoints included, inherits a marker variable naming the
head's temp dir; stopping kills the head's process tree, its session and whatever carries
the marker (a job's orphans).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from tests.clusters.ports import free_ports

MARKER_ENV = "COLABOT_TEST_RAY_HEAD"
# Unix socket paths are limited to 107 bytes and Ray adds about 71 to its temp dir.
MAX_TEMP_DIR = 32
BASE_DIR = "/tmp/colabot-ray"


class RayHeadError(RuntimeError):
    """The head did not start, or did not stop."""


# Ports with fixed defaults that two heads would fight over.
PORT_FLAGS = {
    "gcs": "--port",
    "dashboard": "--dashboard-port",
    "client_server": "--ray-client-server-port",
    "agent_listen": "--dashboard-agent-listen-port",
}


class RayHead:
    """One Ray head (and worker node) on this machine."""

    def __init__(
        self,
        *,
        num_cpus: int = 2,
        num_gpus: int = 1,
        token: str | None = None,
        hide: Path | None = None,
    ) -> None:
        Path(BASE_DIR).mkdir(parents=True, exist_ok=True)
        self.temp_dir = tempfile.mkdtemp(prefix="h_", dir=BASE_DIR)
        if len(self.temp_dir) > MAX_TEMP_DIR:
            raise RayHeadError(f"temp dir {self.temp_dir} is too long for Ray's sockets")
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.hide = hide
        """A folder the head's node sees as an empty one of its own (a mount namespace with a
        tmpfs there): the node does not share it with colabot."""
        self.token = token or secrets.token_hex(24)
        self.ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))
        self.ray = str(Path(sys.executable).with_name("ray"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._known: dict[tuple[int, float], psutil.Process] = {}
        self._log = Path(self.temp_dir) / "ray-start.log"

    @property
    def address(self) -> str:
        """The Jobs API (dashboard) URL."""
        return f"http://127.0.0.1:{self.ports['dashboard']}"

    def environment(self) -> dict[str, str]:
        """The head's environment: ours without any RAY_ setting, token auth on, and the
        marker every process of this head inherits."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN=self.token,
            RAY_USAGE_STATS_ENABLED="0",
            # Without it, a stopping node drains for up to 30 s while a job runs.
            RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0",
            # Keep 127.0.0.1 as asked (Ray would pick the outbound address otherwise).
            RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
            TMPDIR=self.temp_dir,
            PATH=str(Path(self.ray).parent) + os.pathsep + os.environ.get("PATH", ""),
            PYTHONUNBUFFERED="1",
        )
        env[MARKER_ENV] = self.temp_dir
        return env

    def start(self, timeout: float = 120.0) -> RayHead:
        """Start the head and wait until its Jobs API answers and its node is alive."""
        argv = [
            self.ray,
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1",
            f"--num-cpus={self.num_cpus}",
            f"--num-gpus={self.num_gpus}",
            f"--temp-dir={self.temp_dir}",
            "--disable-usage-stats",
            *(f"{flag}={self.ports[name]}" for name, flag in PORT_FLAGS.items()),
        ]
        if self.hide is not None:
            mount = 'mount -t tmpfs tmpfs "$1" && shift && exec "$@"'
            argv = [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                mount,
                "sh",
                str(self.hide),
                *argv,
            ]
        log = self._log.open("wb")
        self._proc = subprocess.Popen(
            argv,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.temp_dir,
        )
        log.close()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _request(self, path: str) -> Any:
        connection = http.client.HTTPConnection("127.0.0.1", self.ports["dashboard"], timeout=3)
        try:
            connection.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise OSError(f"HTTP {response.status} for {path}")
            return json.loads(body)
        finally:
            connection.close()

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        problem: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RayHeadError(f"ray start exited:\n{self.log_tail()}")
            self._remember()
            try:
                self._request("/api/version")
                self._request("/api/jobs/")
                nodes = self._request("/api/v0/nodes")["data"]["result"]["result"]
                if any(node.get("state") == "ALIVE" for node in nodes):
                    return
            except (OSError, KeyError, ValueError) as exc:
                problem = exc
            time.sleep(0.2)
        raise RayHeadError(f"the head was not ready in {timeout} s ({problem})\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """The end of ``ray start``'s output."""
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _remember(self, *, by_marker: bool = False) -> None:
        """Note every process of this head seen so far (pid and start time, so a reused pid
        is never mistaken for one of ours)."""
        if self._proc is None:
            return
        found: list[psutil.Process] = []
        try:
            root = psutil.Process(self._proc.pid)
            found = [root, *root.children(recursive=True)]
        except psutil.Error:
            pass
        own = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
        for process in psutil.process_iter():
            try:
                if process.pid in own:
                    continue
                ours = self._proc.returncode is None and os.getsid(process.pid) == self._proc.pid
                if not ours and by_marker:
                    ours = process.environ().get(MARKER_ENV) == self.temp_dir
                if ours:
                    found.append(process)
            except (psutil.Error, OSError):
                continue
        for process in found:
            try:
                self._known[(process.pid, process.create_time())] = process
            except psutil.Error:
                continue

    def _alive(self) -> list[psutil.Process]:
        alive = []
        for process in self._known.values():
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(process)
            except psutil.Error:
                continue
        return alive

    def stop(self) -> None:
        """Stop this head and everything it started; raise if anything survives."""
        if self._proc is None:
            return
        self._remember(by_marker=True)
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(15)
        psutil.wait_procs(self._alive(), timeout=3)
        for _ in range(3):
            self._remember(by_marker=True)
            leftovers = self._alive()
            if not leftovers:
                break
            for process in leftovers:
                try:
                    process.kill()
                except psutil.Error:
                    continue
            psutil.wait_procs(leftovers, timeout=5)
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        survivors = [p.pid for p in self._alive()]
        self._proc = None
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        if survivors:
            raise RayHeadError(f"processes of the head survived: {survivors}")
