"""Outbox delivery: at least once, in order per job, nothing lost or repeated across outages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bot.config import Config
from bot.service import Colabot
from tests.bot.conftest import USER, Person
from tests.emulator.faults import FaultyBotApi
from workers.events import EventType
from workers.jobs import Action, JobSpec, JobState


def job_messages(emu: FaultyBotApi, job_id: int) -> list[str]:
    """The texts of new messages (not edits) the chat received about one job."""
    return [
        e.text or ""
        for e in emu.events
        if e.kind == "message" and e.chat_id == USER and f"#{job_id} " in (e.text or "")
    ]


async def test_a_burst_of_5xx_and_429_loses_and_repeats_nothing(
    colabot: Colabot, person: Person, emu: FaultyBotApi
) -> None:
    emu.inject_failure("sendMessage", 502, times=3)
    emu.inject_failure("sendMessage", 429, retry_after=1, times=2)
    emu.inject_failure("editMessageText", 500, times=2)
    assert colabot.engine is not None
    first = colabot.engine.submit(
        JobSpec("selftest", Action.TRAIN, {}, {"steps": "2", "delay": "0"}), {"chat_id": USER}
    )
    second = colabot.engine.submit(
        JobSpec("selftest", Action.TRAIN, {}, {"fail": "yes", "delay": "0"}), {"chat_id": USER}
    )
    await person.next_message("#1 selftest train finished", timeout=40)
    await person.next_message("#2 selftest train failed", timeout=40)
    for job in (first, second):
        texts = job_messages(emu, job.id)
        assert len(texts) == 2, texts  # the status message and the outcome, once each
        assert "selftest train ·" in texts[0]
    assert "finished" in job_messages(emu, first.id)[1]
    assert "told to fail" in job_messages(emu, second.id)[1]
    failures = [c for c in emu.calls if c.status in (429, 500, 502)]
    assert len(failures) >= 5
    assert colabot.delivery is not None
    await asyncio.wait_for(colabot.delivery.drained(), 30)


async def test_events_wait_in_the_outbox_across_a_restart(
    start_colabot: Callable[..., Any], chat_config: Config, person: Person, emu: FaultyBotApi
) -> None:
    first: Colabot = await start_colabot(chat_config)
    assert first.engine is not None and first.store is not None
    emu.inject_failure("sendMessage", 502, times=1000)
    finished = asyncio.Event()
    first.engine.on_state(lambda j: finished.set() if j.state is JobState.SUCCEEDED else None)
    job = first.engine.submit(
        JobSpec("selftest", Action.TRAIN, {}, {"steps": "1", "delay": "0"}), {"chat_id": USER}
    )
    await asyncio.wait_for(finished.wait(), timeout=20)
    assert first.store.pending_events(), "the outage should have left events undelivered"
    await first.stop()
    emu.clear_failures()
    second: Colabot = await start_colabot(chat_config)
    await person.next_message(f"#{job.id} selftest train finished", timeout=30)
    assert len(job_messages(emu, job.id)) == 2
    assert second.store is not None and second.delivery is not None
    types = [e.type for e in second.store.events_for(job.id)]
    assert types[0] is EventType.QUEUED and EventType.SUCCEEDED in types
    await asyncio.wait_for(second.delivery.drained(), 30)


async def test_delivered_events_are_not_sent_again_after_a_restart(
    start_colabot: Callable[..., Any], chat_config: Config, person: Person, emu: FaultyBotApi
) -> None:
    first: Colabot = await start_colabot(chat_config)
    await person.say("/train selftest steps=1 delay=0")
    await person.next_message("finished")
    await first.stop()
    sent_before = len([e for e in emu.events if e.kind == "message"])
    await start_colabot(chat_config)
    await person.say("/jobs")
    sent_after = [e for e in emu.events if e.kind == "message"][sent_before:]
    about_job = [e.text or "" for e in sent_after if "#1" in (e.text or "")]
    assert len(about_job) == 1 and about_job[0].startswith("✅ #1 selftest train · succeeded")
