"""Facts about this machine: Colab or not, its age and time left, GPU, CPU, memory and disk."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil

from bot.config import Config

COLAB_DRIVE = Path("/content/drive")


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as NVML reports it."""

    name: str
    memory_used_mb: float
    memory_total_mb: float
    utilization_pct: float | None = None


@dataclass(frozen=True)
class MachineFacts:
    """A snapshot of the machine's resources."""

    is_colab: bool
    cpu_count: int
    cpu_percent: float
    ram_used_gb: float
    ram_total_gb: float
    disk_free_gb: float
    disk_total_gb: float
    gpus: list[GpuInfo] = field(default_factory=list)
    gpu_note: str = ""


@dataclass(frozen=True)
class RuntimeClock:
    """When this runtime started, where that fact came from, and how long it may live."""

    started_at: float
    source: str
    max_seconds: float
    note: str = ""

    @property
    def deadline(self) -> float:
        """When the provider is expected to take the runtime away."""
        return self.started_at + self.max_seconds

    def age(self, now: float) -> float:
        """Seconds since the runtime started."""
        return max(0.0, now - self.started_at)

    def left(self, now: float) -> float:
        """Seconds until the expected end (0 once past it)."""
        return max(0.0, self.deadline - now)


def is_colab() -> bool:
    """True inside a Google Colab runtime."""
    return bool(os.environ.get("COLAB_RELEASE_TAG")) or (
        importlib.util.find_spec("google") is not None
        and importlib.util.find_spec("google.colab") is not None
    )


def machine_start() -> float:
    """When this machine (or container) started: the start of process 1, else the boot time.

    A Colab runtime is a container on a longer-lived VM, so process 1's start is the
    runtime's start; on an ordinary machine both are the boot.
    """
    try:
        return float(psutil.Process(1).create_time())
    except (psutil.Error, OSError):
        return float(psutil.boot_time())


def runtime_clock(
    config: Config,
    *,
    read_start: Callable[[], float] = machine_start,
    process_started: float | None = None,
    now: float | None = None,
) -> RuntimeClock:
    """The runtime's clock: ``runtime.start`` if set, else the machine's start.

    An unreadable or implausible start time falls back to this process's start, with a note
    saying so.
    """
    now = time.time() if now is None else now
    max_seconds = config.runtime.max_hours * 3600
    if config.runtime.start:
        started = datetime.fromisoformat(config.runtime.start)
        if started.tzinfo is None:
            started = started.astimezone()
        return RuntimeClock(started.timestamp(), "runtime.start", max_seconds)
    fallback = process_started if process_started is not None else _process_start()
    try:
        started_at = read_start()
    except Exception as exc:
        note = f"the machine's start time could not be read ({type(exc).__name__}); "
        return RuntimeClock(fallback, "colabot start", max_seconds, note + _fallback_note())
    if not started_at or started_at > now + 60 or now - started_at > 366 * 86400:
        note = "the machine's start time looks wrong; " + _fallback_note()
        return RuntimeClock(fallback, "colabot start", max_seconds, note)
    if now - started_at >= max_seconds:
        # A machine that outlived the limit is no such runtime (a workstation, a VM): counted
        # from its boot, every start would warn that the runtime is over.
        note = (
            f"the machine has run for {(now - started_at) / 3600:.0f} h, past runtime.max_hours "
            f"({config.runtime.max_hours:g} h), so its boot is not the runtime's start; "
            + _fallback_note()
        )
        return RuntimeClock(fallback, "colabot start", max_seconds, note)
    return RuntimeClock(started_at, "machine start", max_seconds)


def _fallback_note() -> str:
    return "counting the runtime limit from when colabot started instead"


def _process_start() -> float:
    try:
        return float(psutil.Process().create_time())
    except psutil.Error:
        return time.time()


def visible_gpu_count(environ: dict[str, str] | None = None) -> int:
    """The GPUs a local step sees: NVML's count, narrowed by ``CUDA_VISIBLE_DEVICES``."""
    gpus, _ = read_gpus()
    visible = (os.environ if environ is None else environ).get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return len(gpus)
    listed = [item for item in visible.split(",") if item.strip() and item.strip() != "-1"]
    return min(len(gpus), len(listed))


def read_gpus() -> tuple[list[GpuInfo], str]:
    """GPUs through NVML (nvidia-ml-py); an empty list and a reason when there are none."""
    if importlib.util.find_spec("pynvml") is None:
        return [], "nvidia-ml-py is not installed"
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return [], f"no NVIDIA GPU ({exc})"
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                util: float | None = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except pynvml.NVMLError:
                util = None
            gpus.append(
                GpuInfo(
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    memory_used_mb=memory.used / 1024**2,
                    memory_total_mb=memory.total / 1024**2,
                    utilization_pct=util,
                )
            )
        return gpus, ""
    except pynvml.NVMLError as exc:
        return [], f"NVML error: {exc}"
    finally:
        pynvml.nvmlShutdown()


def read_facts(data_dir: Path) -> MachineFacts:
    """Resources now. Cheap enough for a chat command (no interval sampling)."""
    memory = psutil.virtual_memory()
    disk_path = data_dir if data_dir.exists() else Path.home()
    disk = shutil.disk_usage(disk_path)
    gpus, gpu_note = read_gpus()
    return MachineFacts(
        is_colab=is_colab(),
        cpu_count=os.cpu_count() or 1,
        cpu_percent=psutil.cpu_percent(interval=None),
        ram_used_gb=(memory.total - memory.available) / 1024**3,
        ram_total_gb=memory.total / 1024**3,
        disk_free_gb=disk.free / 1024**3,
        disk_total_gb=disk.total / 1024**3,
        gpus=gpus,
        gpu_note=gpu_note,
    )


def setup_hints(config: Config, *, drive_mount: Path = COLAB_DRIVE) -> list[str]:
    """Advice about the setup that is not an error (printed by ``colabot check``)."""
    hints = []
    roots = [r.expanduser() for r in config.worker.input_roots]
    for root in roots:
        if not root.exists():
            hints.append(f"input root {root} does not exist (yet)")
    if drive_mount.is_dir():
        drive_roots = [r for r in roots if r == drive_mount or r.is_relative_to(drive_mount)]
        if not drive_roots:
            hints.append(
                f"Google Drive is mounted at {drive_mount}; add "
                f'"{drive_mount / "MyDrive"}" to worker.input_roots to use files from it'
            )
    if config.results.backend == "local":
        results = config.results.dir.expanduser()
        if is_colab() and not results.is_relative_to(drive_mount):
            hints.append(
                f"results.dir {results} is on the runtime's own disk, which vanishes with it; "
                'use a folder under /content/drive/MyDrive or results.backend = "drive"'
            )
    return hints


def drive_mount_results(config: Config, *, drive_mount: Path = COLAB_DRIVE) -> bool:
    """Whether results go to Google Drive through Colab's mount (a local results folder
    under /content/drive), on a Colab runtime."""
    if config.results.backend != "local" or not is_colab():
        return False
    return config.results.dir.expanduser().is_relative_to(drive_mount)


async def flush_drive_mount(config: Config) -> str | None:
    """Make sure what colabot wrote through Colab's Drive mount has reached Drive: writes
    land on the runtime's disk first, and Colab documents ``drive.flush_and_unmount()`` for
    this (it blocks until they are in Drive, then unmounts). Returns a note for the chat, or
    None when results do not go through the mount."""
    if not drive_mount_results(config):
        return None
    try:
        from google.colab import drive
    except ImportError:
        return None
    try:
        await asyncio.to_thread(drive.flush_and_unmount)
    except Exception as exc:
        return (
            f"Google Drive could not be flushed ({type(exc).__name__}: {exc}); the newest "
            "results may not be in Drive yet."
        )
    return (
        "Everything colabot wrote to Google Drive has reached it (Colab's flush); the Drive "
        "mount is now closed, so later copies go nowhere until it is mounted again."
    )
