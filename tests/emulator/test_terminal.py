"""The terminal chat: typed lines in, the real bot's replies rendered out."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from emulator import BotApiEmulator, TerminalChat, render
from emulator.chat_input import (
    Help,
    Invalid,
    Press,
    Quit,
    Reply,
    SendText,
    Upload,
    parse_line,
)
from tests.emulator.helpers import USER_ID, AppStarter, png_bytes

KEYBOARD = InlineKeyboardMarkup(
    [
        [
            InlineKeyboardButton("Status", callback_data="status"),
            InlineKeyboardButton("Logs", callback_data="logs"),
            InlineKeyboardButton("Cancel", callback_data="cancel"),
        ]
    ]
)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text("Welcome", reply_markup=KEYBOARD)


async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    await query.answer(f"{query.data} ok")
    await query.edit_message_text(f"Showing {query.data}", reply_markup=KEYBOARD)


async def received(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    assert message is not None and message.document is not None
    await message.reply_text(f"received {message.document.file_name}")
    await message.reply_document(b"result", filename="result.txt")


async def train(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    assert message is not None
    replied = message.reply_to_message
    if replied is not None and replied.document is not None:
        await message.reply_text(f"training on {replied.document.file_name}")


async def plot(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_photo(png_bytes(4, 3), caption="loss")


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None and update.effective_message.text
    await update.effective_message.reply_text(f"echo: {update.effective_message.text}")


@pytest.fixture
async def colabot_like(start_app: AppStarter) -> None:
    """A bot with a menu, button answers, document handling and a reply-driven command."""
    await start_app(
        CommandHandler("start", start),
        CommandHandler("train", train),
        CommandHandler("plot", plot),
        CallbackQueryHandler(pressed),
        MessageHandler(filters.Document.ALL, received),
        MessageHandler(filters.TEXT & ~filters.COMMAND, echo),
    )


@pytest.mark.usefixtures("colabot_like")
async def test_terminal_chat_end_to_end(emulator: BotApiEmulator, tmp_path: Path) -> None:
    output = io.StringIO()
    data = tmp_path / "data.zip"
    data.write_bytes(b"PK\x03\x04 tiny archive")
    chat = TerminalChat(emulator, output=output, interactive=False)

    assert await chat.handle_line("/start\n")
    await emulator.wait_for(kind="message")
    assert "#1 you: /start\n#2 bot: Welcome\n    [b1 Status] [b2 Logs] [b3 Cancel]\n" in (
        output.getvalue()
    )

    assert await chat.handle_line("b2")
    await emulator.wait_for(kind="callback_answer")
    await emulator.wait_for(kind="edit")
    assert "> pressed [b2 Logs] on #2\n(bot: logs ok)\n~ #2 (edited): Showing logs\n" in (
        output.getvalue()
    )

    assert await chat.handle_line(f"/upload {data} /train selftest")
    await emulator.wait_for(kind="message")
    sent_back = await emulator.wait_for(kind="document")
    assert sent_back.file_path is not None
    assert sent_back.file_path.read_bytes() == b"result"
    shown = output.getvalue()
    assert "#3 you: [document] data.zip (17 B)\n    /train selftest\n" in shown
    assert "#4 bot: received data.zip\n" in shown
    assert f"#5 bot: [document] result.txt (6 B) saved at {sent_back.file_path}\n" in shown

    assert await chat.handle_line("/reply 3 /train")
    reply = await emulator.wait_for(kind="message")
    assert reply.text == "training on data.zip"
    assert "#6 you (reply to #3): /train\n#7 bot: training on data.zip\n" in output.getvalue()

    assert await chat.handle_line("/plot")
    photo = await emulator.wait_for(kind="photo")
    assert "#9 bot: [photo 4x3] (" in output.getvalue()
    assert f"saved at {photo.file_path}\n    loss\n" in output.getvalue()

    assert not await chat.handle_line(":quit")
    chat.detach()


@pytest.mark.usefixtures("colabot_like")
async def test_terminal_mistakes_are_explained_without_tracebacks(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    output = io.StringIO()
    async with TerminalChat(emulator, output=output, interactive=False) as chat:
        await chat.handle_line("b1")
        await chat.handle_line("/start")
        await emulator.wait_for(kind="message")
        await chat.handle_line("b9")
        await chat.handle_line("b1.1")
        await chat.handle_line(f"/upload {tmp_path / 'missing.zip'}")
        await chat.handle_line("/reply 99 hello")
        await chat.handle_line(":bogus")
        await chat.handle_line(":help")

    lines = output.getvalue()
    assert "! no message has buttons" in lines
    assert "! message #2 has b1..b3" in lines
    assert "! message #1 has no buttons" in lines
    assert f"! no such file: {tmp_path / 'missing.zip'}" in lines
    assert "! there is no message #99 in chat 1000" in lines
    assert "! unknown terminal command :bogus; :help lists them" in lines
    assert render.HELP_TEXT in lines
    assert "Traceback" not in lines


@pytest.mark.usefixtures("colabot_like")
async def test_run_reads_lines_until_quit(emulator: BotApiEmulator) -> None:
    output = io.StringIO()
    chat = TerminalChat(emulator, input=io.StringIO("hello\n\n:quit\nnever sent\n"), output=output)

    await chat.run()

    reply = await emulator.wait_for(kind="message")
    assert reply.text == "echo: hello"
    assert [m["text"] for m in emulator.messages(USER_ID) if not m["from"]["is_bot"]] == ["hello"]
    assert output.getvalue().startswith("Offline chat with @colabot_test_bot.")


async def test_run_ends_at_end_of_input(emulator: BotApiEmulator) -> None:
    output = io.StringIO()
    await TerminalChat(emulator, input=io.StringIO("one line\n"), output=output).run()

    assert "#1 you: one line" in output.getvalue()


async def test_terminal_redraws_an_edit_of_the_last_message_in_place(
    emulator: BotApiEmulator, bot: Bot
) -> None:
    output = io.StringIO()
    async with TerminalChat(emulator, output=output, interactive=True):
        first = await bot.send_message(USER_ID, "Job 1: 10%")
        await bot.edit_message_text("Job 1: 60%", chat_id=USER_ID, message_id=first.message_id)
        await bot.send_message(USER_ID, "Job 2 queued")
        await bot.edit_message_text("Job 1: done", chat_id=USER_ID, message_id=first.message_id)

    shown = output.getvalue()
    assert "#1 bot: Job 1: 10%\n\x1b[1F\x1b[J#1 bot (edited): Job 1: 60%\n" in shown
    assert "#2 bot: Job 2 queued\n~ #1 (edited): Job 1: done\n" in shown


async def test_other_chats_are_marked(emulator: BotApiEmulator, bot: Bot) -> None:
    output = io.StringIO()
    emulator.add_chat(-42, title="Lab")
    async with TerminalChat(emulator, output=output, interactive=False):
        await bot.send_message(-42, "group news")

    assert "[chat -42] #1 bot: group news" in output.getvalue()


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("hello there\n", SendText("hello there")),
        ("   \n", None),
        ("/train selftest", SendText("/train selftest")),
        ("/upload ~/data.zip /train selftest", Upload("~/data.zip", "/train selftest")),
        ('/upload "my data.zip" go', Upload("my data.zip", "go")),
        ("/upload data.zip", Upload("data.zip", None)),
        ("/upload", Invalid("usage: /upload PATH [caption]")),
        ("/reply 12 /train", Reply(12, "/train")),
        ("/reply x hi", Invalid("usage: /reply N text")),
        ("b3", Press(3, None)),
        ("b1.12", Press(1, 12)),
        ("b", SendText("b")),
        (":help", Help()),
        (":q", Quit()),
        (":say /upload is a word", SendText("/upload is a word")),
    ],
)
def test_typed_lines_are_parsed(line: str, parsed: object) -> None:
    assert parse_line(line) == parsed


def test_messages_render_with_number_attachment_and_buttons(tmp_path: Path) -> None:
    message = {
        "message_id": 12,
        "text": "Job 3\nrunning",
        "reply_to_message": {"message_id": 11},
        "reply_markup": {
            "inline_keyboard": [
                [{"text": "Status", "callback_data": "s"}, {"text": "Logs", "callback_data": "l"}],
                [{"text": "Docs", "url": "https://example.org"}],
            ]
        },
    }

    assert render.render_message(message, who="bot") == (
        "#12 bot (reply to #11): Job 3\n"
        "    running\n"
        "    [b1 Status] [b2 Logs]\n"
        "    [b3 Docs -> https://example.org]"
    )
    document = {"message_id": 3, "document": {"file_name": "r.zip", "file_size": 3 * 1024 * 1024}}
    assert render.render_message(document, who="bot", file_path=tmp_path / "r.zip") == (
        f"#3 bot: [document] r.zip (3.0 MB) saved at {tmp_path / 'r.zip'}"
    )
    assert render.render_edit({"message_id": 4, "text": "x"}) == "~ #4 (edited): x"
    assert render.render_delete({"message_id": 4}) == "- #4 (deleted)"


@pytest.mark.parametrize(
    ("callback", "shown"),
    [
        ({"text": "Cancelled", "show_alert": False}, "(bot: Cancelled)"),
        ({"text": "Really?", "show_alert": True}, "! alert from bot: Really?"),
        ({"text": None, "show_alert": False}, "(bot acknowledged the button)"),
    ],
)
def test_callback_answers_render_as_short_notes(callback: dict[str, object], shown: str) -> None:
    assert render.render_callback_answer(callback) == shown


def test_sizes_and_rows() -> None:
    assert render.format_size(512) == "512 B"
    assert render.format_size(1536) == "1.5 KB"
    assert render.terminal_rows("ab\n" + "x" * 25, columns=10) == 4
