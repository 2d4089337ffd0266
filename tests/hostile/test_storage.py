"""The data folder under stress: a second colabot on it, a full disk, a damaged, read-only or
locked database, an unwritable folder, and a log that ends in one endless line."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot import notebook
from bot.config import Config, WorkerConfig
from bot.service import Colabot
from emulator import BotApiEmulator
from tests.helpers.chat import USER, Person
from tests.helpers.cli import colabot_env, finish_cli, run_cli, start_cli
from workers.errors import DataDirLockedError
from workers.jobs import JobState


def with_worker(config: Config, **changes: Any) -> Config:
    return dataclasses.replace(config, worker=dataclasses.replace(config.worker, **changes))


# ------------------------------------------------------------------------ one per data folder


async def test_a_second_colabot_on_the_same_data_folder_refuses_and_harms_nothing(
    colabot: Colabot, person: Person, chat_config: Config, emu: BotApiEmulator, tmp_path: Path
) -> None:
    status = await person.say("/train selftest steps=2000 delay=0.05")
    assert "#1 selftest train" in (status.text or "")
    second = Colabot(chat_config)
    with pytest.raises(DataDirLockedError) as refused:
        await second.start()
    assert str(refused.value).startswith("another colabot (process ")
    assert str(chat_config.data_dir) in str(refused.value)
    assert colabot.engine is not None and colabot.engine.job(1).state is JobState.RUNNING

    env = colabot_env(
        telegram_token="123456:OTHERtokenOTHERtokenOTH",
        telegram_api_url=emu.url,
        telegram_allowed_users=str(USER),
        worker_data_dir=str(chat_config.data_dir),
    )
    code, stderr = await finish_cli(await start_cli("run", env=env))
    lines = stderr.strip().splitlines()
    assert code == 1 and len(lines) == 1, stderr
    assert lines[0].startswith("colabot could not start: another colabot (process ")
    assert "is already running on the data folder" in lines[0]
    assert colabot.engine.job(1).state is JobState.RUNNING
    assert (await person.say("/jobs")).text is not None


async def test_notebook_start_twice_restarts_cleanly(chat_config: Config, person: Person) -> None:
    first = await notebook.start(chat_config)
    second = await notebook.start(chat_config)
    try:
        assert first is not second and not first.running and second.running
        assert second.lock.held and not first.lock.held
        assert "Commands" in ((await person.say("/help")).text or "")
    finally:
        await notebook.stop()
    assert not second.lock.held


# ------------------------------------------------------------------------------- a full disk


async def test_a_job_that_fills_the_disk_fails_with_that_reason_and_the_rest_goes_on(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    small_disk: Path,
) -> None:
    config = with_worker(chat_config, data_dir=small_disk / "data", min_free_disk_mb=0.5)
    colabot: Colabot = await start_colabot(config)
    await person.say("/train selftest steps=1 delay=0 flood_mb=8")
    failed = await person.next_message("#1 selftest train failed", timeout=60)
    assert "Reason: disk full: " in (failed.text or "")
    assert f"MB free in {small_disk / 'data'}" in (failed.text or "")
    # The chat still answers, and the next job runs.
    jobs = await person.say("/jobs")
    assert "#1 selftest train · failed" in (jobs.text or "")
    await person.say("/train selftest steps=2 delay=0")
    done = await person.next_message("#2 selftest train finished", timeout=60)
    assert "selftest train: 2 steps" in (done.text or "")
    assert colabot.engine is not None
    log = colabot.engine.log_path(1)
    assert "bytes cut here: the disk was full" in log.read_text()
    assert log.stat().st_size < 1024 * 1024


async def test_new_jobs_are_refused_while_the_disk_is_low_and_a_warning_comes_once(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    emu: BotApiEmulator,
    small_disk: Path,
) -> None:
    config = with_worker(chat_config, data_dir=small_disk / "data", min_free_disk_mb=100)
    colabot: Colabot = await start_colabot(config)
    refused = await person.say("/train selftest steps=1")
    text = refused.text or ""
    assert "not enough free disk space to start a job" in text
    assert "(worker.min_free_disk_mb is 100)" in text
    assert colabot.engine is not None and colabot.engine.jobs() == []
    assert colabot.heartbeat is not None
    for _ in range(3):
        await colabot.heartbeat.tick(time.time())
    await person.next_message("Disk space is low")
    await colabot.heartbeat.tick(time.time())
    await person.say("/help")
    assert len([e for e in emu.events if "Disk space is low" in (e.text or "")]) == 1


# ------------------------------------------------------------------- the database and folder


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("corrupt", "the database is damaged; move it away to start with an empty one"),
        ("not a folder", "cannot use the data folder: Not a directory"),
    ],
)
def test_a_damaged_database_or_folder_gives_one_line_at_start(
    tmp_path: Path, damage: str, expected: str
) -> None:
    data = tmp_path / "data"
    if damage == "corrupt":
        data.mkdir()
        (data / "colabot.sqlite3").write_bytes(b"this is not a database" * 100)
    else:
        (tmp_path / "file").write_text("x")
        data = tmp_path / "file" / "data"
    done = run_cli("run", env=colabot_env(worker_data_dir=str(data)))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith("colabot could not start: ") and expected in lines[0]


def test_a_read_only_data_folder_gives_one_line_at_start(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(folder)], check=False).returncode:
        pytest.skip("SKIPPED LOUDLY: a read-only folder needs a tmpfs mount (root)")
    try:
        done = run_cli("run", env=colabot_env(worker_data_dir=str(folder / "data")))
        assert done.returncode == 0  # the offline chat ends at once: stdin is closed
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        done = run_cli("run", env=colabot_env(worker_data_dir=str(folder / "data")))
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert (
        lines[0].startswith("colabot could not start: ") and "Read-only file system" in (lines[0])
    )


async def test_a_command_during_a_long_database_lock_says_busy(
    colabot: Colabot, person: Person, chat_config: Config
) -> None:
    locked = threading.Event()
    release = threading.Event()

    def hold_the_lock() -> None:
        other = sqlite3.connect(chat_config.data_dir / "colabot.sqlite3", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(30)
        other.execute("ROLLBACK")
        other.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert locked.wait(10)
        reply = await person.say("/train selftest steps=1", timeout=30)
    finally:
        release.set()
        holder.join()
    assert "colabot is busy (its database is locked); try again in a moment" in (reply.text or "")
    assert "Something went wrong" not in (reply.text or "")
    await person.say("/train selftest steps=1 delay=0")
    await person.next_message("#1 selftest train finished", timeout=30)


async def test_logs_show_the_end_of_one_endless_line(colabot: Colabot, person: Person) -> None:
    await person.say("/train selftest steps=1 delay=0")
    await person.next_message("finished")
    assert colabot.engine is not None
    with colabot.engine.log_path(1).open("ab") as log:
        log.write(b"x" * 6_000_000 + b"THE-END")
    reply = await person.say("/logs 1")
    text = reply.text or ""
    assert "THE-END" in text and "…" in text and len(text) < 4096


def test_worker_min_free_disk_mb_is_documented_and_checked() -> None:
    from bot.config import parse_config
    from bot.errors import ConfigError

    assert WorkerConfig().min_free_disk_mb == 500.0
    with pytest.raises(ConfigError, match=r"worker\.min_free_disk_mb: must not be negative"):
        parse_config({"worker": {"min_free_disk_mb": -1}}, {})
    example = (Path(__file__).resolve().parents[2] / "config.example.toml").read_text()
    assert "min_free_disk_mb = 500" in example
