"""One bot for a whole lab, under load: many jobs from five people at once, in their private
chats and in a group, within Telegram's flood limits (the emulator answers 429 to anything
over them, and keeps count), every event once and in order, and none waiting behind a status
edit; then a share of 429s and 5xx and two SIGKILLs of colabot while the jobs run, losing and
repeating nothing. ``python -m bench.lab_load`` runs the same with 100 jobs and prints the
figures; the reading of the chats (:class:`~bench.lab_load.Ledger`) is shared with it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.lab_load import (
    Finished,
    Ledger,
    Owners,
    Resumer,
    StoreWatch,
    edits_while_events_waited,
    finish_delays,
    job_problems,
    kill_when_quiet,
    read_store,
)
from bot.config import Config
from bot.limits import PRIVATE_BURST
from emulator.flood import FloodRefusal
from tests.emulator.faults import FaultyBotApi
from tests.helpers.cli import colabot_env, start_bot_process
from tests.helpers.lab import ADMIN, ALICE, BOB
from tests.helpers.waiting import eventually
from workers.events import EventType
from workers.jobs import JobState
from workers.store.database import Store

CAROL = 7171
DAN = 8181
PEOPLE = (ALICE, BOB, ADMIN, CAROL, DAN)
GROUP = -700_900
"""The group Alice and Bob run jobs in too."""
GRACE_S = 0.5
"""An edit already on its way when an event was stored may arrive after it."""


def job(index: int, steps: int = 8, delay: float = 0.3) -> str:
    """A light selftest job, of a length that varies with ``index`` (jobs that all took as
    long would all end together)."""
    return f"/train selftest steps={steps + index % 5} delay={delay}"


def lab(config: Config, parallel: int) -> Config:
    """The five people allowed, Ada (``ADMIN``) an admin, the group opted in."""
    telegram = dataclasses.replace(
        config.telegram, allowed_users=PEOPLE, admins=(ADMIN,), allowed_chats=(GROUP,)
    )
    worker = dataclasses.replace(config.worker, max_parallel_jobs=parallel)
    return dataclasses.replace(config, telegram=telegram, worker=worker)


def add_people(emu: FaultyBotApi) -> None:
    """Each person's private chat with colabot, and the group."""
    for person in PEOPLE:
        emu.add_chat(person, first_name=f"person {person}")
    emu.add_chat(GROUP, title="Lab")


async def test_thirty_jobs_from_five_people_stay_within_telegrams_limits_and_lose_nothing(
    start_colabot: Callable[..., Any], chat_config: Config, emu: FaultyBotApi
) -> None:
    add_people(emu)
    colabot = await start_colabot(lab(chat_config, parallel=8))
    store = colabot.store
    assert store is not None
    for index in range(28):
        await emu.send_text(job(index), user_id=PEOPLE[index % len(PEOPLE)])
    for index, person in enumerate((ALICE, BOB)):
        await emu.send_text(job(index), user_id=person, chat_id=GROUP)

    def all_out() -> bool:
        jobs = store.list_jobs()
        return len(jobs) == 30 and not any(j.active for j in jobs) and not store.pending_events()

    await eventually(all_out, 150, "every job ended and every event delivered", every=0.2)
    jobs = store.list_jobs()
    events = {j.id: store.events_for(j.id) for j in jobs}
    ledger = Ledger.read(emu.events)

    assert all(j.state is JobState.SUCCEEDED for j in jobs)
    assert emu.flood_refusals == []
    assert job_problems(ledger, jobs, events) == []
    chat_of = {j.id: int(j.origin["chat_id"]) for j in jobs}
    # Every event whose delivery had to wait (the chats were at their limits) waited for
    # other events only: no ordinary status edit went to its chat while it waited.
    assert edits_while_events_waited(ledger, events, chat_of, GRACE_S) == []
    rates = emu.rate_report()
    assert rates.max_total_per_second <= 30
    assert rates.chats[GROUP].max_per_minute <= 20
    for person in PEOPLE:
        # colabot's bucket: PRIVATE_BURST at once, then one a second.
        assert rates.chats[person].max_per_minute <= PRIVATE_BURST + 60
    # Each job's status message says how it ended.
    for each in jobs:
        status = ledger.of_job(each.id, "status", "edit")
        assert status and status[-1].state == "succeeded", status
    assert len(finish_delays(ledger, jobs)) == 30


def refused_after(refusals: list[FloodRefusal], starts: list[float], seconds: float) -> bool:
    """Whether every refusal came within ``seconds`` after a restart."""
    return all(any(0 <= r.at - s <= seconds for s in starts) for r in refusals)


async def test_through_429s_5xx_and_two_kills_no_event_is_lost_or_repeated_and_no_job_lost(
    tmp_path: Path, emu: FaultyBotApi
) -> None:
    add_people(emu)
    emu.fail_share(0.1, statuses=(429, 502), retry_after=1, seed=11)
    env = colabot_env(
        tmp_path,
        emu.url,
        emu.token,
        telegram_allowed_users=",".join(str(p) for p in PEOPLE),
        telegram_allowed_chats=str(GROUP),
        telegram_admins=str(ADMIN),
        worker_max_parallel_jobs="4",
        heartbeat_interval_minutes="0",
    )
    owners = Owners(emu)
    resumer = Resumer(emu, owners.by_job.get)
    finished = Finished(emu)
    watch = StoreWatch(tmp_path / "data", 10)
    interrupted_by_kill: list[set[int]] = []
    restarts: list[float] = []
    process = await start_bot_process(env, tmp_path, log=tmp_path / "colabot.log")
    try:
        await emu.wait_until_polling(timeout=60)
        for index, person in enumerate((ALICE, BOB, CAROL, ALICE, BOB, CAROL, ALICE, BOB)):
            await owners.train(emu, job(index, steps=12, delay=0.25), person)
        for index, person in enumerate((ALICE, BOB)):
            await owners.train(emu, job(index, steps=12, delay=0.25), person, GROUP)
        for target in (2, 5):

            def reached(target: int = target) -> bool:
                return len(finished.jobs) >= target

            await eventually(reached, 120, f"{target} jobs finished")
            await kill_when_quiet(emu, process)
            store = Store(tmp_path / "data")
            interrupted_by_kill.append({j.id for j in store.list_jobs(states=[JobState.RUNNING])})
            store.close()
            restarts.append(time.time())
            process = await start_bot_process(env, tmp_path, log=tmp_path / "colabot.log")
            await emu.wait_until_polling(timeout=60)
        await eventually(watch.done, 150, "every job succeeded, every event delivered", every=0.2)
    finally:
        watch.close()
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 60)
        if process.returncode is None:
            process.kill()
            await process.wait()
    jobs, events = read_store(tmp_path / "data")
    ledger = Ledger.read(emu.events)

    # No job lost: each ended succeeded, after its owner resumed it where a kill stopped it.
    assert len(jobs) == 10 and all(j.state is JobState.SUCCEEDED for j in jobs)
    assert all(interrupted_by_kill), "each kill should have caught jobs running"
    for job_ids in interrupted_by_kill:
        for job_id in job_ids:
            assert any(e.type is EventType.INTERRUPTED for e in events[job_id])
    owner_of = {j.id: j.owner.user_id for j in jobs if j.owner is not None}
    resumed = {job_id for job_id, _ in resumer.sent}
    assert resumed == {j for ids in interrupted_by_kill for j in ids}
    assert all(owner_of[job_id] == owner for job_id, owner in resumer.sent)
    # No event lost or repeated, none out of order, each in the chat its job came from: one
    # status message per attempt (a resumed job's is posted again), one interrupted notice
    # per interruption offering /resume, one finished message.
    assert job_problems(ledger, jobs, events) == []
    for sent in ledger.sent:
        if sent.kind == "interrupted":
            text = emu.message(sent.chat_id, sent.message_id) or {}
            assert f"/resume {sent.job_id}" in str(text.get("text")), text
    # The faults were there, and colabot kept within the limits but where it could not know
    # what the killed colabot had sent: a group's last minute.
    failures = {f.status for f in emu.share_failures}
    assert failures == {429, 502}
    assert refused_after(emu.flood_refusals, restarts, 61.0), emu.flood_refusals
