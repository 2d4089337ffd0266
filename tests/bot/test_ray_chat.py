"""colabot with ``worker.executor = "ray"``, through the chat: a head that goes away
interrupts the job, and ``/resume`` finishes it on a new one. What Ray shares with Slurm
(jobs run and are listed, the second GPU job waits and says so, cancel, a killed bot, bad
settings) is in test_cluster_chat.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from bot.config import Config
from bot.service import Colabot
from tests.clusters.ray_head import RayHead
from tests.emulator.faults import FaultyBotApi
from tests.helpers.chat import USER, Person
from tests.helpers.clusters import OnRay
from tests.helpers.lab import ALICE, BOB, lab_config, lab_people
from tests.helpers.waiting import eventually
from workers.sharing.quotas import QuotaSettings

pytestmark = pytest.mark.timeout(420)

pytest.importorskip(
    "ray.job_submission", reason="SKIPPED LOUDLY: Ray is not installed (colabot[ray])"
)


async def test_a_head_that_goes_away_interrupts_the_job_and_resume_finishes_it_on_a_new_one(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    start_ray_head: Callable[..., RayHead],
) -> None:
    doomed = start_ray_head()
    first: Colabot = await start_colabot(OnRay(doomed).chat_config(chat_config))
    assert first.engine is not None
    engine = first.engine
    await person.say("/train selftest steps=40 delay=0.25")
    await eventually(lambda: (engine.job(1).progress.step or 0) >= 2, 120, "progress")
    await asyncio.to_thread(doomed.stop)
    lost = await person.next_message("#1 selftest train was interrupted", timeout=90)
    assert "Ray cluster" in (lost.text or "") and "lost" in (lost.text or "")
    await first.stop()
    fresh = start_ray_head()
    await start_colabot(OnRay(fresh).chat_config(chat_config))
    await person.emu.send_text("/resume 1", user_id=USER)  # answered by a new status message
    await person.next_message("#1 selftest train finished", timeout=180)


async def test_owners_fair_share_and_gpu_hours_hold_on_the_ray_head(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    emu: FaultyBotApi,
    ray_head: RayHead,
) -> None:
    alice, bob, admin = lab_people(emu)
    config = OnRay(ray_head).chat_config(lab_config(chat_config))
    colabot: Colabot = await start_colabot(config, quotas=QuotaSettings(running_per_user=1))
    assert colabot.engine is not None
    engine = colabot.engine
    job = "/train selftest steps=8 delay=0.25 gpu=yes"
    await alice.say(job)
    await alice.next_edit("running", timeout=120)
    await alice.say(job)
    await alice.next_edit("waiting: @alice has 1 running job, the limit is 1", timeout=60)
    await bob.say(job)
    assert (await bob.say("/status 1")).text == "⚠️ job #1 is @alice's"
    # Bob's job is started before Alice's second although it came later: she has one running.
    await eventually(lambda: engine.job(3).started_at is not None, 120, "Bob's job to start")
    assert engine.job(2).started_at is None
    for person, job_id in ((alice, 1), (bob, 3), (alice, 2)):
        await person.next_message(f"#{job_id} selftest train finished", timeout=180)
    used = {u.owner_id: u for u in engine.usage()}
    # Each step held Ray's gpus_per_job (1) while it ran: at least its 8 x 0.25 s.
    assert used[ALICE].gpu_hours >= 2 * 2.0 / 3600
    assert used[BOB].gpu_hours >= 2.0 / 3600
    board = (await admin.say("/usage")).text or ""
    assert "@alice" in board and "Bob" in board
