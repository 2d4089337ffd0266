"""The heartbeat: limit warnings, keepalive, idle release and long-job notices, driven by a
clock the test controls (and, for the keepalive, by APScheduler itself)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.config import Config, HeartbeatConfig, ResultsConfig, RuntimeConfig
from bot.runtime import RuntimeClock, runtime_clock
from bot.service import Colabot
from emulator import BotApiEmulator
from tests.helpers.chat import USER, Person
from workers.jobs import Action, JobSpec, JobState

HOUR = 3600.0


def clock_with_left(seconds_left: float, hours: float = 12) -> RuntimeClock:
    """A runtime clock whose limit is ``seconds_left`` from now."""
    return RuntimeClock(time.time() + seconds_left - hours * HOUR, "test", hours * HOUR)


def warnings_in(emu: BotApiEmulator) -> list[str]:
    return [e.text or "" for e in emu.events if "left on this runtime" in (e.text or "")]


async def running_with_checkpoint(colabot: Colabot, steps: int) -> int:
    assert colabot.engine is not None
    reached = asyncio.Event()
    colabot.engine.on_progress(lambda job_id, p: reached.set() if (p.step or 0) >= 3 else None)
    job = colabot.engine.submit(
        JobSpec("selftest", Action.TRAIN, {}, {"steps": str(steps), "delay": "0.05"}),
        {"chat_id": USER},
    )
    await asyncio.wait_for(reached.wait(), 30)
    return job.id


async def test_each_limit_warning_fires_once_at_its_time(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    emu: BotApiEmulator,
    tmp_path: Path,
) -> None:
    config = dataclasses.replace(
        chat_config, results=ResultsConfig(dir=tmp_path / "results", checkpoint_sync_minutes=0)
    )
    clock = clock_with_left(11 * HOUR)  # real-time ticks see nothing due
    colabot: Colabot = await start_colabot(config, clock=clock)
    heartbeat = colabot.heartbeat
    assert heartbeat is not None
    job_id = await running_with_checkpoint(colabot, steps=400)

    first_due = clock.deadline - 60 * 60
    await heartbeat.tick(first_due - 1)
    assert warnings_in(emu) == []
    await heartbeat.tick(first_due)
    first = await person.next_message("left on this runtime")
    text = first.text or ""
    assert "About 1h 0m left" in text
    assert f"#{job_id} selftest train: step" in text and "should finish in time" in text
    assert "Saved to local folder:" in text and "checkpoint at step" in text
    saved = list((tmp_path / "results" / f"job-{job_id}" / "checkpoint").glob("step-*.json"))
    assert len(saved) == 1

    for now in (first_due + 15, first_due + 30 * 60):
        await heartbeat.tick(now)
    await heartbeat.tick(clock.deadline - 15 * 60)
    await person.next_message("About 15m 0s left")
    await heartbeat.tick(clock.deadline - 15 * 60 + 15)
    await heartbeat.tick(clock.deadline - 5 * 60)
    await person.next_message("About 5m 0s left")
    await heartbeat.tick(clock.deadline - 60)
    assert len(warnings_in(emu)) == 3
    snapshot = json.loads((tmp_path / "results" / "colabot-state.json").read_text())
    assert any(j["id"] == job_id for j in snapshot["jobs"])


async def test_keepalive_is_scheduled_edited_in_place_and_reposted_when_scrolled(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    emu: BotApiEmulator,
) -> None:
    config = dataclasses.replace(chat_config, heartbeat=HeartbeatConfig(interval_minutes=10))
    colabot: Colabot = await start_colabot(config)
    assert colabot.heartbeat is not None and colabot.engine is not None
    await running_with_checkpoint(colabot, steps=2000)
    # The first one comes from APScheduler's own tick.
    first = await person.next_message("💓 colabot", timeout=30)
    assert "#1 selftest train" in (first.text or "") and "disk:" in (first.text or "")
    await colabot.heartbeat.tick(time.time() + 11 * 60)
    edit = await person.next_edit("💓 colabot")
    assert edit.message_id == first.message_id
    for _ in range(9):
        await person.say("/jobs")
    await colabot.heartbeat.tick(time.time() + 22 * 60)
    second = await person.next_message("💓 colabot")
    assert second.message_id != first.message_id
    await colabot.engine.cancel(1)


async def test_idle_runtime_is_offered_for_release(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    emu: BotApiEmulator,
) -> None:
    runtime = dataclasses.replace(chat_config.runtime, idle_release_minutes=1)
    config = dataclasses.replace(chat_config, runtime=runtime)
    colabot: Colabot = await start_colabot(config)
    assert colabot.heartbeat is not None
    await colabot.heartbeat.tick(time.time() + 120)
    offer = await person.next_message("No job has run or waited for 1 minutes")
    await person.press(offer, "Keep it")
    await person.next_edit("Keeping the runtime.")
    await colabot.heartbeat.tick(time.time() + 240)
    offer = await person.next_message("No job has run or waited")
    await person.press(offer, "Release runtime")
    await person.next_edit("not a Colab runtime")


async def test_a_job_longer_than_the_time_left_is_flagged_at_once(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
) -> None:
    colabot: Colabot = await start_colabot(chat_config, clock=clock_with_left(10 * 60))
    await person.say("/train selftest steps=100 delay=10")
    notice = await person.next_message("will probably take about")
    assert "16m 40s" in (notice.text or "") and "only 10m" in (notice.text or "")
    assert colabot.engine is not None
    await colabot.engine.cancel(1)


async def test_an_unreadable_boot_time_falls_back_and_says_so(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
) -> None:
    def broken() -> float:
        raise PermissionError("/proc is not readable")

    config = dataclasses.replace(chat_config, runtime=RuntimeConfig())  # the machine's boot
    clock = runtime_clock(config, read_start=broken, process_started=time.time() - 5)
    assert clock.source == "colabot start"
    await start_colabot(chat_config, clock=clock)
    notice = await person.next_message("could not be read")
    assert "counting the runtime limit from when colabot started" in (notice.text or "")


async def test_periodic_checkpoint_sync_keeps_only_the_newest(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    tmp_path: Path,
) -> None:
    config = dataclasses.replace(
        chat_config, results=ResultsConfig(dir=tmp_path / "results", checkpoint_sync_minutes=1)
    )
    colabot: Colabot = await start_colabot(config)
    assert colabot.heartbeat is not None and colabot.engine is not None
    job_id = await running_with_checkpoint(colabot, steps=400)
    folder = tmp_path / "results" / f"job-{job_id}" / "checkpoint"
    await colabot.heartbeat.tick(time.time() + 61)
    first = sorted(p.name for p in folder.iterdir())
    reached = asyncio.Event()
    target = int(first[0].split("-")[1].split(".")[0]) + 3
    colabot.engine.on_progress(lambda j, p: reached.set() if (p.step or 0) >= target else None)
    await asyncio.wait_for(reached.wait(), 30)
    await colabot.heartbeat.tick(time.time() + 200)
    second = sorted(p.name for p in folder.iterdir())
    assert len(first) == 1 and len(second) == 1 and first != second
    assert colabot.engine.job(job_id).checkpoint == f"job-{job_id}/checkpoint/{second[0]}"
    await colabot.engine.cancel(job_id)
    assert colabot.engine.job(job_id).state is JobState.CANCELLED
