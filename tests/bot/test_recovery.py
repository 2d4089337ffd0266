"""A runtime vanishes mid-training; a new one with the same results backend resumes the job.

colabot runs as a real process against the emulator. The test kills its whole process group
(and the job's, as a vanishing machine would) with SIGKILL, starts colabot again with a fresh
data directory, and resumes the job from the checkpoint that was synced before the kill.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import psutil

from emulator import BotApiEmulator
from tests.helpers.chat import Person
from tests.helpers.cli import colabot_env, start_bot_process


def runtime_env(home: Path, emu: BotApiEmulator, data_dir: Path, results: Path) -> dict[str, str]:
    """One runtime's colabot: its own data folder, the shared results backend."""
    return colabot_env(
        home,
        emu.url,
        emu.token,
        worker_data_dir=str(data_dir),
        results_dir=str(results),
        results_checkpoint_sync_minutes="0.01",
        heartbeat_interval_minutes="0",
    )


def kill_everything(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL colabot's process group and every job's group below it."""
    groups = {os.getpgid(proc.pid)}
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            groups.add(os.getpgid(child.pid))
        except ProcessLookupError:
            continue
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            continue


async def wait_for_file(path: Path, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not path.exists():
        assert loop.time() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.1)


async def test_a_killed_runtime_is_resumed_from_the_synced_checkpoint(
    tmp_path: Path, emu: BotApiEmulator, person: Person
) -> None:
    results = tmp_path / "results"
    first = await start_bot_process(
        runtime_env(tmp_path, emu, tmp_path / "data-a", results), tmp_path, new_session=True
    )
    try:
        await emu.wait_until_polling(timeout=60)
        await person.say("/train selftest steps=120 delay=0.25")
        checkpoint_dir = results / "job-1" / "checkpoint"
        await wait_for_file(checkpoint_dir, 60)
        await wait_for_file(results / "colabot-state.json", 30)

        def snapshot_has_checkpoint() -> bool:
            state = json.loads((results / "colabot-state.json").read_text())
            return any(j["id"] == 1 and j["checkpoint"] for j in state["jobs"])

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not snapshot_has_checkpoint():
            assert loop.time() < deadline, "the snapshot never recorded the checkpoint"
            await asyncio.sleep(0.1)
    finally:
        kill_everything(first)
        await first.wait()
    saved = next(checkpoint_dir.iterdir()).name
    saved_step = int(saved.split("-")[1].split(".")[0])

    second = await start_bot_process(
        runtime_env(tmp_path, emu, tmp_path / "data-b", results), tmp_path, new_session=True
    )
    try:
        lost = await person.next_message("The previous runtime stopped", timeout=60)
        text = lost.text or ""
        assert "#1 selftest train" in text and "newest saved checkpoint from step" in text
        await person.press(lost, "Resume #1")
        await person.next_message("#1 selftest train finished", timeout=90)
    finally:
        second.send_signal(signal.SIGINT)
        await asyncio.wait_for(second.wait(), 60)
    result = json.loads(
        (tmp_path / "data-b" / "jobs" / "1" / "outputs" / "result.json").read_text()
    )
    # It started after step 0, from a checkpoint no newer than the last one synced.
    assert 1 < result["first_step"] <= saved_step + 1
