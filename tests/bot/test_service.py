"""``colabot run`` as a user runs it: the offline terminal chat, and online against a server."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot import service
from bot.config import Config
from emulator import BotApiEmulator
from tests.emulator.faults import FaultyBotApi
from tests.helpers.chat import Person, secret_of
from tests.helpers.cli import colabot_env, start_cli, stop_cli
from workers.jobs import JobState
from workers.store.database import Store

ROOT = Path(__file__).resolve().parents[2]


async def read_until(stream: asyncio.StreamReader, marker: str, timeout: float) -> str:
    """Read lines until one contains ``marker``; return everything read."""
    seen: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"output ended before {marker!r}:\n{''.join(seen)}")
            seen.append(line)
            if marker in line:
                return "".join(seen)


async def test_offline_chat_runs_a_selftest_job(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "run",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
        env=colabot_env(HOME=str(tmp_path), results_dir=str(tmp_path / "results")),
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        banner = await read_until(proc.stdout, "Offline chat", 30)
        assert "no telegram.token is set" in banner
        proc.stdin.write(b"/train selftest steps=3 delay=0.2\n")
        await proc.stdin.drain()
        out = await read_until(proc.stdout, "finished in", 60)
        assert "#1 selftest train" in out
        assert "(edited)" in out or "~ #" in out
        proc.stdin.write(b"/status 1\n")
        await proc.stdin.drain()
        assert "progress 3/3" in await read_until(proc.stdout, "progress 3/3", 30)
        proc.stdin.write(b":quit\n")
        await proc.stdin.drain()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_online_run_talks_to_the_configured_server_and_never_logs_the_token(
    tmp_path: Path, emu: BotApiEmulator, person: Person
) -> None:
    env = colabot_env(tmp_path, emu.url, emu.token)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "run",
        "--verbose",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
        env=env,
    )
    assert proc.stdout is not None
    try:
        await emu.wait_until_polling(timeout=30)
        await person.say("/train selftest steps=1 delay=0")
        await person.next_message("finished", timeout=30)
        proc.send_signal(signal.SIGINT)
        output = (await asyncio.wait_for(proc.stdout.read(), 30)).decode()
        assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert "colabot is running" in output and "colabot stopped" in output
    assert secret_of(emu) not in output


async def test_ctrl_c_while_a_job_floods_its_output_stops_colabot_and_keeps_the_job(
    tmp_path: Path, emu: BotApiEmulator, person: Person
) -> None:
    proc = await start_cli("run", env=colabot_env(tmp_path, emu.url, emu.token))
    try:
        await emu.wait_until_polling(timeout=30)
        await person.say("/train selftest steps=1 delay=0 flood_mb=100000")
        await person.next_message("#1 selftest", timeout=30)
        # The status message is being edited as the flood's progress comes in.
        await emu.wait_for(
            lambda e: e.kind == "edit" and "#1 selftest" in (e.text or ""), timeout=30
        )
        code, output = await stop_cli(proc, timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0
    assert "colabot stopped" in output
    store = Store(tmp_path / "data")
    try:
        job = store.find_job(1)
        assert job is not None and job.state is JobState.INTERRUPTED
    finally:
        store.close()


async def test_a_telegram_that_stops_answering_holds_up_the_stop_only_a_while(
    emu: FaultyBotApi,
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    colabot = await start_colabot(chat_config)
    assert "No jobs" in ((await person.say("/jobs", timeout=30)).text or "")
    # From now on Telegram takes every getUpdates and never answers: the one that tells it
    # which updates were read would hold the stop for the client's 40 s read timeout.
    emu.inject_drop("getUpdates", delay=300, times=1000)
    monkeypatch.setattr(service, "STOP_POLLING_S", 1.0)
    await asyncio.wait_for(colabot.stop(), 20)
    assert not colabot.running
