"""What real Telegram does that a friendly server would not: phones send videos, answers to
buttons expire, groups become supergroups, chats block the bot, uploads hit a size limit,
groups have a message budget, forums have topics. The emulator behaves as Telegram is
documented to; each test failed against the client before it learnt the behaviour."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config
from bot.service import Colabot
from emulator import BotEvent
from emulator.mode import ServerMode
from tests.emulator.faults import FaultyBotApi
from tests.helpers.chat import USER, Person
from tests.helpers.waiting import eventually
from workers.jobs import JobState

GROUP = -300_400


def with_groups(config: Config, *groups: int) -> Config:
    return dataclasses.replace(
        config, telegram=dataclasses.replace(config.telegram, allowed_chats=groups)
    )


def finished_message(job_id: int, event: BotEvent) -> bool:
    return f"#{job_id} selftest train finished" in (event.text or "")


def texts_in(emu: FaultyBotApi, chat: int) -> list[str]:
    return [e.text or "" for e in emu.events if e.chat_id == chat and e.kind != "edit"]


# ------------------------------------------------------------------------------ videos


async def test_a_video_or_animation_from_a_phone_is_a_job_input(
    colabot: Colabot, person: Person, emu: FaultyBotApi, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"v" * 5000)
    await emu.send_video(clip, caption="/train selftest steps=1 delay=0", user_id=USER)
    note = await person.next_message("Telegram re-encodes clips sent as a video")
    assert "send as file" in (note.text or "")
    await person.next_message("#1 selftest train finished")
    sent = await emu.send_video(clip, "bugs.gif.mp4", animation=True, user_id=USER)
    await emu.send_text(
        "/train selftest steps=1 delay=0", user_id=USER, reply_to_message_id=sent["message_id"]
    )
    await person.next_message("#2 selftest train finished")
    assert colabot.engine is not None
    first = json.loads((colabot.engine.workdir(1) / "outputs" / "result.json").read_text())
    second = json.loads((colabot.engine.workdir(2) / "outputs" / "result.json").read_text())
    assert first["input"]["name"].startswith("video-") and first["input"]["name"].endswith(".mp4")
    assert first["input"]["bytes"] == clip.stat().st_size
    assert second["input"]["name"] == "bugs.gif.mp4"
    await emu.send_video(clip, caption="/train selftest steps=1 delay=0", user_id=USER)
    await person.next_message("#3 selftest train finished")
    assert len([t for t in texts_in(emu, USER) if "re-encodes" in t]) == 1


# ------------------------------------------------------------------------------ buttons


SHORT_ANSWER_WINDOW = ServerMode(callback_answer_window_s=1.0)
NO_ANSWER_WINDOW = ServerMode(callback_answer_window_s=0.0)


@pytest.mark.parametrize("emu_mode", [SHORT_ANSWER_WINDOW], indirect=True)
async def test_a_slow_cancel_answers_the_button_first_and_edits_the_outcome_in(
    colabot: Colabot, person: Person, emu: FaultyBotApi
) -> None:
    status = await person.say("/train selftest steps=500 delay=0.05 stop_delay=2")
    await person.next_edit(" of 500")
    await person.press(status, "Cancel")
    question = await person.next_message("Cancel #1 selftest train")
    started = time.monotonic()
    await person.press(question, "Yes, cancel it")
    await emu.wait_for(
        lambda e: (e.callback or {}).get("text") == "cancelling #1…",
        kind="callback_answer",
        timeout=10,
    )
    assert time.monotonic() - started < 1.0
    await emu.wait_for(
        lambda e: (
            e.kind == "edit"
            and e.message_id == question.message_id
            and e.text == "Cancelled job #1."
        ),
        timeout=30,
    )
    assert time.monotonic() - started > 2.0, "the job took its time to stop"
    assert colabot.engine is not None and colabot.engine.job(1).state is JobState.CANCELLED
    assert not [t for t in texts_in(emu, USER) if "Something went wrong" in t]
    assert all(call.status == 200 for call in emu.calls if call.method == "answerCallbackQuery")


@pytest.mark.parametrize("emu_mode", [NO_ANSWER_WINDOW], indirect=True)
async def test_a_button_pressed_while_colabot_was_down_still_works(
    start_colabot: Callable[..., Any], chat_config: Config, person: Person, emu: FaultyBotApi
) -> None:
    first: Colabot = await start_colabot(chat_config)
    status = await person.say("/train selftest steps=500 delay=0.05")
    await person.next_edit(" of 500")
    await person.press(status, "Cancel")
    question = await person.next_message("Cancel #1 selftest train")
    await first.stop()
    # Pressed while colabot is down: by the time it is back, too late to answer the press.
    await person.press(question, "Yes, cancel it")
    second: Colabot = await start_colabot(chat_config)
    await emu.wait_for(
        lambda e: (
            e.kind == "edit"
            and e.message_id == question.message_id
            and e.text == "Cancelled job #1."
        ),
        timeout=30,
    )
    assert second.engine is not None and second.engine.job(1).state is JobState.CANCELLED
    late = [c for c in emu.calls if c.method == "answerCallbackQuery"]
    assert late and late[-1].status == 400  # too old: harmless, and nothing else went wrong
    assert not [t for t in texts_in(emu, USER) if "Something went wrong" in t]


# ------------------------------------------------------------------------------ groups


@pytest.mark.parametrize("announce", [True, False], ids=["service message", "error reply"])
async def test_a_group_that_became_a_supergroup_is_followed(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    emu: FaultyBotApi,
    announce: bool,
) -> None:
    emu.add_chat(GROUP, title="Lab")
    colabot: Colabot = await start_colabot(with_groups(chat_config, GROUP))
    await emu.send_text("/train selftest steps=300 delay=0.05", user_id=USER, chat_id=GROUP)
    await emu.wait_for(lambda e: "#1 selftest train" in (e.text or ""), chat_id=GROUP)
    new_id = await emu.upgrade_to_supergroup(GROUP, announce=announce)
    assert colabot.engine is not None
    colabot.engine.notice(None, "the runtime ends in 15 minutes")
    await emu.wait_for(lambda e: "ends in 15" in (e.text or ""), chat_id=new_id, timeout=30)
    await emu.wait_for(lambda e: "ends in 15" in (e.text or ""), chat_id=USER, timeout=30)
    await emu.send_text("/jobs", user_id=USER, chat_id=new_id)
    jobs = await emu.wait_for(lambda e: "#1 selftest train" in (e.text or ""), chat_id=new_id)
    assert "running" in (jobs.text or "")
    await colabot.engine.cancel(1)
    await emu.wait_for(lambda e: "was cancelled" in (e.text or ""), chat_id=new_id, timeout=30)
    assert colabot.engine.job(1).origin["chat_id"] == new_id
    assert len([e for e in emu.events if "ends in 15" in (e.text or "")]) == 2
    if announce:
        assert not [t for t in texts_in(emu, GROUP) if "only understand" in t]


async def test_a_broadcast_reaches_every_chat_once_though_the_first_blocked_the_bot(
    start_colabot: Callable[..., Any], chat_config: Config, emu: FaultyBotApi
) -> None:
    other = -300_500
    for group in (GROUP, other):
        emu.add_chat(group, title=str(group))
    colabot: Colabot = await start_colabot(with_groups(chat_config, GROUP, other))
    for chat in (GROUP, other, USER):
        await emu.send_text("/help", user_id=USER, chat_id=chat if chat != USER else None)
        await emu.wait_for(lambda e: "Commands" in (e.text or ""), chat_id=chat)
    await emu.remove_bot(GROUP, user_id=USER)
    assert colabot.chats is not None
    chats = colabot.chats
    await eventually(lambda: GROUP in chats.forgotten(), what="the kick to be noticed")
    emu.inject_failure("sendMessage", 502, times=1)  # one chat fails once, transiently
    assert colabot.engine is not None and colabot.delivery is not None
    colabot.engine.notice(None, "warning one")
    for chat in (other, USER):
        await emu.wait_for(lambda e: "warning one" in (e.text or ""), chat_id=chat, timeout=30)
    await asyncio.wait_for(colabot.delivery.drained(), 30)
    colabot.engine.notice(None, "warning two")
    for chat in (other, USER):
        await emu.wait_for(lambda e: "warning two" in (e.text or ""), chat_id=chat, timeout=30)
    await asyncio.wait_for(colabot.delivery.drained(), 30)
    for chat in (other, USER):
        assert len([t for t in texts_in(emu, chat) if "warning" in t]) == 2
    refused = [c for c in emu.calls if c.method == "sendMessage" and c.status == 403]
    assert refused == [], "the kicked group was forgotten before anything was sent to it"
    assert colabot.chats is not None and GROUP not in colabot.chats.broadcast_chats()


async def test_a_chat_that_blocks_the_bot_is_forgotten_after_one_refusal(
    start_colabot: Callable[..., Any], chat_config: Config, emu: FaultyBotApi
) -> None:
    emu.add_chat(GROUP, title="Lab")
    colabot: Colabot = await start_colabot(with_groups(chat_config, GROUP))
    await emu.send_text("/help", user_id=USER, chat_id=GROUP)
    await emu.wait_for(lambda e: "Commands" in (e.text or ""), chat_id=GROUP)
    emu.state.chats[GROUP].bot_status = "kicked"  # kicked while colabot was not listening
    assert colabot.engine is not None and colabot.delivery is not None
    colabot.engine.notice(None, "first warning")
    await emu.wait_for(lambda e: "first warning" in (e.text or ""), chat_id=USER, timeout=30)
    await asyncio.wait_for(colabot.delivery.drained(), 30)
    colabot.engine.notice(None, "second warning")
    await emu.wait_for(lambda e: "second warning" in (e.text or ""), chat_id=USER, timeout=30)
    refused = [c for c in emu.calls if c.method == "sendMessage" and c.status == 403]
    assert len(refused) == 1


async def test_service_messages_get_no_reply(
    start_colabot: Callable[..., Any], chat_config: Config, emu: FaultyBotApi
) -> None:
    emu.add_chat(GROUP, title="Lab")
    await start_colabot(with_groups(chat_config, GROUP))
    await emu.add_members(GROUP, [5555], user_id=USER)
    await emu.add_members(GROUP, [6666], user_id=4242)  # a stranger adds someone too
    await emu.send_text("/help", user_id=USER, chat_id=GROUP)
    await emu.wait_for(lambda e: "Commands" in (e.text or ""), chat_id=GROUP)
    assert len([e for e in emu.events if e.chat_id == GROUP]) == 1


# ------------------------------------------------------------------------------ uploads


@pytest.mark.parametrize("emu_mode", [ServerMode(upload_limit=100)], indirect=True)
async def test_a_file_telegram_refuses_as_too_large_becomes_a_link(
    colabot: Colabot, person: Person, emu: FaultyBotApi
) -> None:
    await person.say("/train selftest steps=2 delay=0")
    done = await person.next_message("#1 selftest train finished", timeout=60)
    assert colabot.delivery is not None
    await asyncio.wait_for(colabot.delivery.drained(), 30)
    note = await person.next_message("too large to send in the chat")
    assert "model" in (note.text or "") or "result" in (note.text or "")
    too_large = [c for c in emu.calls if c.method == "sendDocument" and c.status == 413]
    notes = [t for t in texts_in(emu, USER) if "too large to send in the chat" in t]
    assert too_large and len(too_large) == len(notes) == 2, "each file tried once, then a link"
    assert done.message_id is not None


# ------------------------------------------------------------------------------ pacing


async def test_status_edits_in_a_group_keep_within_its_budget(
    start_colabot: Callable[..., Any], chat_config: Config, emu: FaultyBotApi
) -> None:
    emu.add_chat(GROUP, title="Lab")
    colabot: Colabot = await start_colabot(with_groups(chat_config, GROUP))
    for _ in range(2):
        await emu.send_text("/train selftest steps=250 delay=0.1", user_id=USER, chat_id=GROUP)
    for job in (1, 2):
        await emu.wait_for(
            functools.partial(finished_message, job),
            chat_id=GROUP,
            timeout=90,
        )
    edits = [e for e in emu.events if e.chat_id == GROUP and e.kind == "edit"]
    by_job: dict[int | None, list[float]] = {}
    for edit in edits:
        by_job.setdefault(edit.message_id, []).append(edit.time)
    for times in by_job.values():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap >= 9.5 for gap in gaps[:-1]), gaps  # the last is the final state
    for minute_start in [e.time for e in edits]:
        window = [e for e in edits if minute_start <= e.time < minute_start + 60]
        assert len(window) <= 15
    assert not [c for c in emu.calls if c.status == 429]
    assert colabot.engine is not None and colabot.engine.job(2).state is JobState.SUCCEEDED


# ------------------------------------------------------------------------------ topics


async def test_everything_about_a_job_stays_in_its_forum_topic(
    start_colabot: Callable[..., Any], chat_config: Config, emu: FaultyBotApi
) -> None:
    forum = -1_000_000_300_600
    emu.add_chat(forum, title="Lab forum")
    topic = emu.create_topic(forum, "pose models", user_id=USER)
    await start_colabot(with_groups(chat_config, forum))
    await emu.send_text(
        "/train selftest steps=2 delay=0 fail=yes", user_id=USER, chat_id=forum, thread_id=topic
    )
    await emu.wait_for(lambda e: "failed" in (e.text or ""), chat_id=forum, timeout=30)
    await emu.send_text(
        "/train selftest steps=1 delay=0", user_id=USER, chat_id=forum, thread_id=topic
    )
    await emu.wait_for(lambda e: "result.json" in str(e.message), chat_id=forum, timeout=30)
    sent = [e for e in emu.events if e.chat_id == forum and e.kind != "edit"]
    assert len(sent) >= 4
    for event in sent:
        assert (event.message or {}).get("message_thread_id") == topic, event.describe()


# ------------------------------------------------------------------------------ 409 Conflict


async def test_two_pollers_on_one_token_stop_with_one_clear_line(
    colabot: Colabot, emu: FaultyBotApi, chat_config: Config, tmp_path: Path
) -> None:
    from tests.helpers.cli import colabot_env, finish_cli, start_cli

    env = colabot_env(
        telegram_token=chat_config.telegram.token,
        telegram_api_url=emu.url,
        telegram_allowed_users=str(USER),
        worker_data_dir=str(tmp_path / "elsewhere"),
        heartbeat_interval_minutes="0",
    )
    code, stderr = await finish_cli(await start_cli("run", env=env), timeout=90)
    cause = (
        "another process is polling Telegram with this bot token (409 Conflict): stop the other "
        "colabot, or give this one its own bot"
    )
    assert code == 1
    # "409 Conflict", not "409": a port number in another line can hold those digits.
    assert [line for line in stderr.splitlines() if "409 Conflict" in line] == [
        f"config error: telegram.token: {cause}"
    ]
    assert "Traceback" not in stderr
    await asyncio.wait_for(colabot.failed.wait(), 60)
    assert str(colabot.fatal) == f"telegram.token: {cause}"
