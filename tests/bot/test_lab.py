"""One bot for a lab, through the chat with several people: each job has an owner, only its
owner and the admins act on it, /jobs lists one's own (``all``: everyone's), runtime warnings
go to the people concerned, quotas hold jobs back or refuse them, and /usage adds it up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.config import Config
from bot.service import Colabot
from tests.emulator.faults import FaultyBotApi
from tests.helpers.lab import ALICE, BOB, lab_config, lab_people
from tests.helpers.waiting import eventually
from workers.sharing.quotas import QuotaSettings

GROUP = -700_800
LONG = "steps=1000 delay=1"


async def test_only_the_owner_and_admins_act_on_a_job_and_jobs_lists_ones_own(
    start_colabot: Callable[..., Any], chat_config: Config, emu: FaultyBotApi
) -> None:
    alice, bob, admin = lab_people(emu)
    await start_colabot(lab_config(chat_config))
    await alice.say(f"/train selftest {LONG}")
    await alice.next_edit("running")
    commands = ("/status 1", "/cancel 1", "/logs 1", "/stop 1", "/plot 1", "/results 1")
    for command in (*commands, "/resume 1", "/compare 1 2"):
        refusal = await bob.say(command)
        assert refusal.text == "⚠️ job #1 is @alice's", command
    assert "No jobs yet" in ((await bob.say("/jobs")).text or "")
    everyone = (await bob.say("/jobs all")).text or ""
    assert "#1 selftest train" in everyone and "@alice" in everyone
    mine = (await alice.say("/jobs")).text or ""
    assert "#1 selftest train" in mine and "@alice" not in mine
    assert "owner: @alice" in ((await admin.say("/status 1")).text or "")
    confirm = await admin.say("/cancel 1")
    await admin.press(confirm, "Yes, cancel it")
    await alice.next_message("cancelled")


async def test_a_button_on_someone_elses_job_in_a_group_is_refused_and_events_mention_the_owner(
    start_colabot: Callable[..., Any], chat_config: Config, emu: FaultyBotApi
) -> None:
    lab_people(emu)
    emu.add_chat(GROUP, title="Lab")
    await start_colabot(lab_config(chat_config, allowed_chats=(GROUP,)))
    await emu.send_text("/train selftest steps=60 delay=0.05", user_id=ALICE, chat_id=GROUP)
    status = await emu.wait_for(lambda e: "#1 selftest" in (e.text or ""), chat_id=GROUP)
    await emu.press_button(GROUP, status.message_id or 0, "cx:1", user_id=BOB)
    await emu.wait_for(lambda e: e.text == "⚠️ job #1 is @alice's", chat_id=GROUP)
    done = await emu.wait_for(
        lambda e: e.kind == "message" and "finished" in (e.text or ""), chat_id=GROUP, timeout=60
    )
    message = emu.message(GROUP, done.message_id or 0) or {}
    # Telegram turns a tg://user link into a mention that notifies the person.
    links = [m.get("url") or m.get("user", {}).get("id") for m in message.get("entities", [])]
    assert f"tg://user?id={ALICE}" in links or ALICE in links
    assert (message.get("text") or "").startswith("@alice ✅ #1 selftest train finished")


async def test_runtime_warnings_go_to_the_owners_of_running_jobs_and_the_admins(
    start_colabot: Callable[..., Any], chat_config: Config, emu: FaultyBotApi
) -> None:
    alice, _, admin = lab_people(emu)
    colabot: Colabot = await start_colabot(lab_config(chat_config))
    await alice.say(f"/train selftest {LONG}")
    await alice.next_edit("running")
    assert colabot.engine is not None
    colabot.engine.notice(None, "the runtime ends in 15 minutes")
    await alice.next_message("ends in 15")
    await admin.next_message("ends in 15")
    store = colabot.store
    assert store is not None
    await eventually(
        lambda: not [e for e in store.pending_events() if e.job_id is None],
        10,
        "the warning delivered everywhere it goes",
    )
    assert not [e for e in emu.events if e.chat_id == BOB and "ends in 15" in (e.text or "")]


async def test_quotas_hold_a_job_back_and_refuse_one_over_the_weekly_gpu_hours(
    start_colabot: Callable[..., Any], chat_config: Config, emu: FaultyBotApi
) -> None:
    alice, bob, _ = lab_people(emu)
    quotas = QuotaSettings(running_per_user=1)
    await start_colabot(lab_config(chat_config), quotas=quotas)
    await alice.say(f"/train selftest {LONG}")
    await alice.next_edit("running")
    posted = await alice.say(f"/train selftest {LONG}")
    why = "waiting: @alice has 1 running job, the limit is 1"
    # Posted that way, or edited to it once the engine holds the job back.
    if why not in (posted.text or ""):
        await alice.next_edit(why)
    await bob.say("/train selftest steps=1 delay=0")
    await bob.next_message("finished", timeout=30)


async def test_a_used_up_week_is_refused_at_submit_saying_when_it_resets(
    start_colabot: Callable[..., Any], chat_config: Config, emu: FaultyBotApi
) -> None:
    alice, _, admin = lab_people(emu)
    quotas = QuotaSettings(gpu_hours_per_user_per_week=0, admins_exempt=True)
    await start_colabot(lab_config(chat_config), quotas=quotas)
    refusal = (await alice.say("/train selftest steps=1 delay=0")).text or ""
    assert "@alice has used 0.0 of 0 GPU-hours this week; the week resets Mon" in refusal
    assert "#1 selftest" in ((await admin.say("/train selftest steps=1 delay=0")).text or "")


async def test_usage_shows_ones_own_hours_and_an_admin_sees_everyones_with_a_chart(
    start_colabot: Callable[..., Any], chat_config: Config, emu: FaultyBotApi
) -> None:
    alice, bob, admin = lab_people(emu)
    await start_colabot(lab_config(chat_config))
    await alice.say("/train selftest steps=2 delay=0.1")
    await alice.next_message("finished", timeout=30)
    own = (await alice.say("/usage")).text or ""
    assert "this week: 0.00 GPU-hours" in own and "Everyone" not in own
    assert "in total: 0.00 GPU-hours · 0.00 CPU wall-hours" in own
    board = (await admin.say("/usage")).text or ""
    assert "Everyone this week" in board and "@alice" in board
    chart = await admin.next_message("GPU-hours this week", timeout=60)
    assert chart.kind == "photo"
    assert "Everyone" not in ((await bob.say("/usage")).text or "")
