"""Who reaches the bot: strangers, allowed people in chats that are not allowed, groups that
opted in, edited commands, a guard whose own reply fails, and Telegram's notes about a
stranger's chats. The guard fails closed."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from bot.config import Config
from bot.service import Colabot
from tests.emulator.faults import FaultyBotApi
from tests.helpers.chat import STRANGER, USER, Person
from tests.helpers.waiting import eventually

GROUP = -100_200_300
OTHER_GROUP = -100_999_999


def in_group(config: Config, *groups: int) -> Config:
    """The chat configuration with these groups opted in."""
    return dataclasses.replace(
        config, telegram=dataclasses.replace(config.telegram, allowed_chats=groups)
    )


async def test_an_allowed_user_in_a_group_that_did_not_opt_in_is_refused(
    colabot: Colabot, person: Person, emu: FaultyBotApi
) -> None:
    await person.say("/train selftest steps=1 delay=0")
    await person.next_message("finished")
    emu.add_chat(GROUP, title="Lab")
    await emu.send_text("/jobs", user_id=USER, chat_id=GROUP)
    refusal = await emu.wait_for(kind="message", chat_id=GROUP)
    assert f"add its id ({GROUP}) there" in (refusal.text or "")
    await emu.send_text("/logs 1", user_id=USER, chat_id=GROUP)
    await emu.send_text("/train selftest steps=1", user_id=USER, chat_id=GROUP)
    await person.say("/help")
    group_texts = [e.text or "" for e in emu.events if e.chat_id == GROUP]
    assert len(group_texts) == 1 and "selftest" not in group_texts[0]
    assert colabot.engine is not None and len(colabot.engine.jobs()) == 1


async def test_an_opted_in_group_serves_allowed_users_only(
    start_colabot: Callable[..., Any], chat_config: Config, emu: FaultyBotApi
) -> None:
    colabot: Colabot = await start_colabot(in_group(chat_config, GROUP))
    emu.add_chat(GROUP, title="Lab")
    sent = await emu.send_text("/train selftest steps=1 delay=0", user_id=USER, chat_id=GROUP)
    done = await emu.wait_for(
        lambda e: "finished" in (e.text or ""), chat_id=GROUP, kind="message", timeout=30
    )
    assert "#1 selftest train" in (done.text or "")
    await emu.send_text("/jobs", user_id=STRANGER, chat_id=GROUP)
    refusal = await emu.wait_for(
        lambda e: e.text == "Sorry, this is a private bot.", chat_id=GROUP, timeout=10
    )
    assert refusal.message_id is not None and sent["message_id"] < refusal.message_id
    assert colabot.engine is not None and len(colabot.engine.jobs()) == 1


async def test_broadcasts_reach_private_chats_and_opted_in_groups_only(
    start_colabot: Callable[..., Any], chat_config: Config, emu: FaultyBotApi, person: Person
) -> None:
    colabot: Colabot = await start_colabot(in_group(chat_config, GROUP))
    for group in (GROUP, OTHER_GROUP):
        emu.add_chat(group, title=str(group))
        await emu.send_text("/help", user_id=USER, chat_id=group)
    await person.say("/help")
    assert colabot.engine is not None
    colabot.engine.notice(None, "the runtime ends in 15 minutes")
    await emu.wait_for(lambda e: "ends in 15" in (e.text or ""), chat_id=USER, timeout=10)
    await emu.wait_for(lambda e: "ends in 15" in (e.text or ""), chat_id=GROUP, timeout=10)
    assert not [e for e in emu.events if e.chat_id == OTHER_GROUP and "ends in" in (e.text or "")]


async def test_an_edited_command_is_not_run_again(
    colabot: Colabot, person: Person, emu: FaultyBotApi
) -> None:
    sent = await emu.send_text("/train selftest steps=1 delay=0", user_id=USER)
    await person.next_message("finished")
    await emu.edit_text(sent["message_id"], "/train selftest steps=2 delay=0", user_id=USER)
    answer = await person.next_message("Edited commands are not run again")
    assert ((answer.message or {}).get("reply_to_message") or {}).get("message_id") == sent[
        "message_id"
    ]
    await emu.edit_text(sent["message_id"], "/train selftest steps=3 delay=0", user_id=USER)
    await person.say("/help")
    assert colabot.engine is not None and len(colabot.engine.jobs()) == 1
    notes = [e for e in emu.events if "Edited commands" in (e.text or "")]
    assert len(notes) == 1


async def test_the_guard_stops_a_stranger_even_when_its_refusal_fails(
    colabot: Colabot, emu: FaultyBotApi, person: Person, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    emu.add_chat(STRANGER, first_name="Mallory")
    # The refusal gets a reply python-telegram-bot cannot turn into a Message.
    emu.inject_odd_reply("sendMessage", {"unexpected": True})
    await emu.send_text("/train selftest steps=1 delay=0", user_id=STRANGER)
    await emu.wait_for_call("sendMessage", finished=True)
    await person.say("/jobs")
    assert colabot.engine is not None and colabot.engine.jobs() == []
    assert "could not send the refusal" in caplog.text


async def test_a_button_from_a_chat_that_is_not_allowed_is_refused(
    colabot: Colabot, person: Person, emu: FaultyBotApi
) -> None:
    await emu.send_text("/train selftest steps=300 delay=0.05", user_id=USER)
    status = await person.next_message("#1 selftest")
    emu.add_chat(GROUP, title="Lab")
    group_message = await emu.send_text("hello", user_id=USER, chat_id=GROUP)
    # A forged press: the bot's cancel button data on a message in another chat.
    record = emu.state.get_message(GROUP, group_message["message_id"])
    assert record is not None
    record.message["reply_markup"] = {
        "inline_keyboard": [[{"text": "Cancel", "callback_data": "cy:1"}]]
    }
    await emu.press_button(GROUP, group_message["message_id"], "cy:1", user_id=USER)
    answer = await emu.wait_for(kind="callback_answer", timeout=10)
    assert "telegram.allowed_chats" in str((answer.callback or {}).get("text"))
    assert colabot.engine is not None and colabot.engine.job(1).state.value == "running"
    assert status.message_id is not None


# ----------------------------------------------------------------- service updates


def chat_rows(config: Config) -> dict[int, tuple[object, object]]:
    """What the database keeps about chats: chat id -> (met at, forgotten at)."""
    with sqlite3.connect(config.data_dir / "colabot.sqlite3") as db:
        rows = db.execute("SELECT chat_id, met_at, forgotten_at FROM chats").fetchall()
        migrations = db.execute("SELECT old_id, new_id FROM chat_migrations").fetchall()
    assert migrations == [], migrations
    return {int(chat): (met, forgotten) for chat, met, forgotten in rows}


async def test_a_strangers_service_updates_write_nothing(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    emu: FaultyBotApi,
    person: Person,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.gate")
    colabot: Colabot = await start_colabot(in_group(chat_config, GROUP))
    emu.add_chat(GROUP, title="Lab")
    await emu.send_text("/help", user_id=USER, chat_id=GROUP)
    await emu.wait_for(lambda e: "Commands" in (e.text or ""), chat_id=GROUP)
    await person.say("/help")
    before = chat_rows(chat_config)
    assert set(before) == {USER, GROUP}

    # A stranger adds the bot to a group of theirs, fills it, upgrades it, removes the bot,
    # and blocks it in their private chat: each is a real note from Telegram.
    emu.add_chat(STRANGER, first_name="Mallory")
    stranger_group = -4242
    emu.add_chat(stranger_group, title="Mallory's")
    await emu.add_members(stranger_group, [5555], user_id=STRANGER)
    new_id = await emu.upgrade_to_supergroup(stranger_group, user_id=STRANGER)
    await emu.remove_bot(new_id, user_id=STRANGER)
    await emu.remove_bot(STRANGER, user_id=STRANGER)
    # Updates are handled in the order they come: once the next command is answered, the
    # notes before it were handled.
    await person.say("/help")
    assert chat_rows(chat_config) == before
    for chat in (stranger_group, new_id, STRANGER):
        assert f"ignored a service update about chat {chat} (not served)" in caplog.text
    assert colabot.chats is not None and colabot.chats.forgotten() == set()
    strangers = {stranger_group, new_id, STRANGER}
    assert not [e for e in emu.events if e.chat_id in strangers]

    # The same notes about a chat colabot serves still count, whoever caused them.
    chats = colabot.chats
    await emu.remove_bot(GROUP, user_id=STRANGER)
    await eventually(lambda: GROUP in chats.forgotten(), what="the group's removal")
    after = chat_rows(chat_config)
    assert set(after) == {USER, GROUP} and after[GROUP][1] is not None
    assert GROUP not in chats.broadcast_chats()
