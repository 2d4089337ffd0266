"""Facts about the machine: the runtime clock, GPUs, resources and setup hints."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from bot.config import Config, RuntimeConfig, WorkerConfig
from bot.runtime import read_facts, read_gpus, runtime_clock, setup_hints


def test_the_clock_counts_from_the_machine_start() -> None:
    clock = runtime_clock(Config(), read_start=lambda: 1000.0, now=1000.0 + 3600)
    assert clock.source == "machine start" and clock.note == ""
    assert clock.age(4600.0) == 3600 and clock.left(4600.0) == 11 * 3600


def test_a_configured_start_wins() -> None:
    config = Config(runtime=RuntimeConfig(start="2026-11-21T09:00:00+00:00", max_hours=24))
    clock = runtime_clock(config, read_start=lambda: 0.0)
    assert clock.source == "runtime.start" and clock.max_seconds == 24 * 3600
    assert time.gmtime(clock.started_at)[3] == 9


def test_an_unreadable_or_implausible_start_falls_back_and_says_so() -> None:
    def broken() -> float:
        raise OSError("no /proc")

    clock = runtime_clock(Config(), read_start=broken, process_started=500.0, now=600.0)
    assert clock.started_at == 500.0 and clock.source == "colabot start"
    assert "could not be read (OSError)" in clock.note
    future = runtime_clock(Config(), read_start=lambda: 10_000.0, process_started=500.0, now=600.0)
    assert future.started_at == 500.0 and "looks wrong" in future.note


def test_a_machine_that_outlived_the_limit_counts_from_colabot_s_start() -> None:
    # A workstation up for three days: its boot is no runtime's start, or every job would
    # hear that the runtime is over.
    now = 1000.0 + 3 * 86400
    clock = runtime_clock(Config(), read_start=lambda: 1000.0, process_started=now - 60, now=now)
    assert clock.started_at == now - 60 and clock.source == "colabot start"
    assert "run for 72 h, past runtime.max_hours (12 h)" in clock.note
    assert clock.left(now) == 12 * 3600 - 60
    young = runtime_clock(Config(), read_start=lambda: 1000.0, now=1000.0 + 11 * 3600)
    assert young.source == "machine start"


def test_without_an_nvidia_gpu_the_reason_is_given() -> None:
    gpus, note = read_gpus()
    assert gpus == [] and note


def test_resources_are_read(tmp_path: Path) -> None:
    facts = read_facts(tmp_path)
    assert facts.cpu_count >= 1 and facts.ram_total_gb > 0 and facts.disk_free_gb > 0


def test_a_mounted_drive_is_suggested_as_an_input_root(tmp_path: Path) -> None:
    mount = tmp_path / "drive"
    (mount / "MyDrive").mkdir(parents=True)
    config = Config(worker=WorkerConfig(input_roots=(tmp_path / "absent",)))
    hints = setup_hints(config, drive_mount=mount)
    assert any("does not exist" in h for h in hints)
    assert any(f'add "{mount / "MyDrive"}" to worker.input_roots' in h for h in hints)
    covered = dataclasses.replace(config, worker=WorkerConfig(input_roots=(mount / "MyDrive",)))
    assert not any("is mounted" in h for h in setup_hints(covered, drive_mount=mount))
