"""End to end through the real python-telegram-bot and the emulator: every command."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup

from bot.service import Colabot
from emulator import BotApiEmulator
from tests.helpers.chat import STRANGER, USER, Person, secret_of


async def test_start_and_help(colabot: Colabot, person: Person) -> None:
    welcome = await person.say("/start")
    assert "colabot runs training and inference jobs" in (welcome.text or "")
    assert "/train <kind> <input>" in (welcome.text or "")
    kind = await person.say("/help selftest")
    assert "/train selftest [input] [steps=5]" in (kind.text or "")
    command = await person.say("/help logs")
    assert "/logs <job id> [lines]" in (command.text or "")


async def test_train_reports_through_one_status_message_and_a_result(
    colabot: Colabot, person: Person, emu: BotApiEmulator
) -> None:
    await emu.send_text("/train selftest steps=3 delay=0.1", user_id=USER)
    status = await person.next_message("#1 selftest train")
    assert (status.message or {}).get("reply_to_message", {}).get("text", "").startswith("/train")
    done = await person.next_message("finished")
    assert "selftest train: 3 steps" in (done.text or "")
    assert "result.json" in (done.text or "")
    final = emu.message(USER, status.message_id or 0) or {}
    assert "succeeded" in final["text"]
    assert [b["text"] for b in final["reply_markup"]["inline_keyboard"][0]] == [
        "Status",
        "Logs",
        "Results",
    ]
    document = await person.next_message("result.json")
    saved = emu.local_path(USER, document.message_id or 0)
    assert saved is not None and json.loads(saved.read_text())["steps"] == 3


async def test_jobs_status_logs_results_and_runtime(colabot: Colabot, person: Person) -> None:
    assert "No jobs yet" in ((await person.say("/jobs")).text or "")
    await person.say("/train selftest steps=2 delay=0")
    await person.next_message("finished")
    jobs = await person.say("/jobs")
    assert "#1 selftest train · succeeded" in (jobs.text or "")
    status = await person.say("/status 1")
    assert "#1 selftest train: succeeded" in (status.text or "")
    assert "progress 2/2" in (status.text or "")
    logs = await person.say("/logs 1 3")
    assert (logs.text or "").splitlines()[-1].startswith("selftest: wrote")
    results = await person.say("/results 1")
    assert "Results of #1 selftest train" in (results.text or "")
    assert "model.zip" in (results.text or "")
    runtime = await person.say("/runtime")
    assert "CPU:" in (runtime.text or "") and "time left" in (runtime.text or "")


async def test_long_logs_come_as_a_file(
    colabot: Colabot, person: Person, emu: BotApiEmulator
) -> None:
    await person.say("/train selftest steps=400 delay=0")
    await person.next_message("finished", timeout=60)
    reply = await person.say("/logs 1 500")
    assert reply.kind == "document"
    path = emu.local_path(USER, reply.message_id or 0)
    assert path is not None and path.read_text().count("progress ") == 400


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("/frobnicate", "unknown command /frobnicate"),
        ("/status", "/status needs a job id"),
        ("/status twelve", "'twelve' is not a job id"),
        ("/status 99", "there is no job 99"),
        ("/logs 99", "there is no job 99"),
        ("/cancel 99", "there is no job 99"),
        ("/results 1 2", "takes one job id"),
        ("/train", "needs a job kind"),
        ("/train selftest a b", "too many arguments: b"),
        ("/train selftest steps=many", "params.steps: must be a whole number"),
        ("/train selftest /etc/passwd", "outside the allowed input folders"),
        ("/train selftest ../secret.txt", "may not contain '..'"),
        ("/infer selftest", "inputs.model: missing"),
        ("/train selftest file:///etc/passwd", "file:// URLs are not accepted"),
        ("/train selftest ftp://host/x", "unknown link format"),
    ],
)
async def test_bad_commands_get_clear_messages(
    colabot: Colabot, person: Person, command: str, expected: str
) -> None:
    reply = await person.say(command)
    assert expected in (reply.text or "")
    assert "Traceback" not in (reply.text or "")


async def test_usage_is_shown_with_a_kind_error(colabot: Colabot, person: Person) -> None:
    reply = await person.say("/train selftest fail=perhaps")
    assert "Usage: /train selftest [input]" in (reply.text or "")


async def test_plain_text_gets_a_hint(colabot: Colabot, person: Person) -> None:
    assert "only understand commands" in ((await person.say("hello?")).text or "")


async def test_a_stranger_is_refused_once_and_learns_nothing(
    colabot: Colabot, person: Person, emu: BotApiEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    await person.say("/train selftest steps=1 delay=0")
    emu.add_chat(STRANGER, first_name="Mallory")
    caplog.set_level(logging.WARNING)
    await emu.send_text("/jobs secret-words", user_id=STRANGER)
    refusal = await emu.wait_for(kind="message", chat_id=STRANGER)
    assert refusal.text == "Sorry, this is a private bot."
    await emu.send_text("/status 1", user_id=STRANGER)
    await emu.send_text("/help", user_id=USER)
    await person.next_message("Commands")
    assert [e.text for e in emu.events if e.chat_id == STRANGER] == [
        "Sorry, this is a private bot."
    ]
    assert f"user {STRANGER}" in caplog.text and "secret-words" not in caplog.text


async def test_a_strangers_button_press_is_refused(
    colabot: Colabot, person: Person, emu: BotApiEmulator
) -> None:
    await emu.send_text("/train selftest steps=300 delay=0.05", user_id=USER)
    status = await person.next_message("#1 selftest")
    await emu.press_button(USER, status.message_id or 0, "cx:1", user_id=STRANGER)
    answer = await emu.wait_for(kind="callback_answer")
    assert (answer.callback or {}).get("text") == "Sorry, this is a private bot."
    assert colabot.engine is not None and colabot.engine.job(1).state.value == "running"


async def test_an_upload_is_a_job_input(
    colabot: Colabot, person: Person, emu: BotApiEmulator, tmp_path: Path
) -> None:
    data = tmp_path / "corpus.txt"
    data.write_bytes(b"some words\n" * 100)
    await emu.send_document(data, caption="/train selftest steps=1 delay=0", user_id=USER)
    await person.next_message("finished")
    assert colabot.engine is not None
    result = json.loads((colabot.engine.workdir(1) / "outputs" / "result.json").read_text())
    assert result["input"]["name"] == "corpus.txt" and result["input"]["bytes"] == 1100


async def test_a_command_replying_to_a_document_uses_it(
    colabot: Colabot, person: Person, emu: BotApiEmulator
) -> None:
    sent = await emu.send_document(b"abc", "notes.bin", user_id=USER)
    hint = await person.next_message("reply to it with a command")
    assert "notes.bin" in (hint.text or "")
    await emu.send_text(
        "/train selftest steps=1 delay=0", user_id=USER, reply_to_message_id=sent["message_id"]
    )
    await person.next_message("finished")
    assert colabot.engine is not None
    result = json.loads((colabot.engine.workdir(1) / "outputs" / "result.json").read_text())
    assert result["input"]["bytes"] == 3


async def test_a_too_large_upload_names_the_alternatives(
    colabot: Colabot, person: Person, emu: BotApiEmulator
) -> None:
    await emu.send_document(
        b"x", "video.mp4", caption="/train selftest", user_id=USER, reported_size=25 * 1024 * 1024
    )
    reply = await person.next_message("video.mp4")
    text = reply.text or ""
    assert "25.0 MB" in text and "up to 20 MB" in text
    assert "path" in text and "Google Drive" in text and "http(s) URL" in text
    assert colabot.engine is not None and colabot.engine.jobs() == []


async def test_cancel_through_the_button(
    colabot: Colabot, person: Person, emu: BotApiEmulator
) -> None:
    await emu.send_text("/train selftest steps=500 delay=0.05", user_id=USER)
    status = await person.next_message("#1 selftest")
    await person.next_edit("running")
    await person.press(status, "Cancel")
    question = await person.next_message("Cancel #1 selftest train")
    await person.press(question, "Yes, cancel it")
    await person.next_message("#1 selftest train was cancelled")
    assert colabot.engine is not None and colabot.engine.job(1).state.value == "cancelled"


async def test_declining_a_cancel_keeps_the_job(
    colabot: Colabot, person: Person, emu: BotApiEmulator
) -> None:
    await emu.send_text("/train selftest steps=300 delay=0.05", user_id=USER)
    await person.next_message("#1 selftest")
    question = await person.say("/cancel 1")
    await person.press(question, "No, keep it")
    await person.next_edit("Kept job #1 running")
    assert colabot.engine is not None and colabot.engine.job(1).state.value == "running"


async def test_status_and_logs_buttons(
    colabot: Colabot, person: Person, emu: BotApiEmulator
) -> None:
    await emu.send_text("/train selftest steps=2 delay=0", user_id=USER)
    status = await person.next_message("#1 selftest")
    await person.next_message("finished")
    await person.press(status, "Logs")
    logs = await person.next_message("Last")
    assert "progress 2/2" in (logs.text or "")
    await person.press(status, "Status")
    assert "succeeded" in ((await person.next_message("#1 selftest train:")).text or "")


async def test_bad_button_data_is_answered(
    colabot: Colabot, person: Person, emu: BotApiEmulator
) -> None:
    # A button left in the chat by something else (an older version, another tool).
    async with Bot(emu.token, base_url=emu.base_url) as other:
        old = await other.send_message(
            USER,
            "old",
            reply_markup=InlineKeyboardMarkup(
                [
                    [InlineKeyboardButton("Old", callback_data="zz:nonsense")],
                    [InlineKeyboardButton("Gone", callback_data="st:999")],
                ]
            ),
        )
    await emu.press_button(USER, old.message_id, "zz:nonsense", user_id=USER)
    answer = await emu.wait_for(kind="callback_answer")
    assert (answer.callback or {}).get("text") == "that button is not valid any more"
    await emu.press_button(USER, old.message_id, "st:999", user_id=USER)
    assert "there is no job 999" in ((await person.next_message("999")).text or "")


async def test_cancelling_a_finished_job_says_so(colabot: Colabot, person: Person) -> None:
    await person.say("/train selftest steps=1 delay=0")
    await person.next_message("finished")
    reply = await person.say("/cancel 1")
    assert "job 1 is succeeded; cannot cancel it" in (reply.text or "")


async def test_status_edits_never_hit_message_not_modified(
    colabot: Colabot, person: Person, emu: BotApiEmulator
) -> None:
    await emu.send_text("/train selftest steps=30 delay=0.2", user_id=USER)
    await person.next_message("finished", timeout=60)
    edits = [c for c in emu.calls if c.method == "editMessageText"]
    assert edits, "the status message was never edited"
    assert all(c.status == 200 for c in edits)
    assert not any("not modified" in (c.description or "") for c in emu.calls)


async def test_the_token_never_reaches_the_chat(
    colabot: Colabot, person: Person, emu: BotApiEmulator
) -> None:
    await person.say("/train selftest steps=1 delay=0")
    await person.next_message("finished")
    await person.say("/logs 1 100")
    await person.say("/status 1")
    texts = " ".join((e.text or "") for e in emu.events)
    assert secret_of(emu) not in texts
