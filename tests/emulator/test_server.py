"""The real python-telegram-bot against the emulator over 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyParameters,
    Update,
)
from telegram.error import BadRequest, Conflict, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.ext import (
    AIORateLimiter,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.request import HTTPXRequest

from tests.emulator.faults import FaultyBotApi
from tests.emulator.helpers import BOT_ID, BOT_USERNAME, USER_ID, AppStarter, png_bytes

MB = 1024 * 1024


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text(
        " ".join(context.args or []) or "(nothing)", do_quote=True
    )


async def test_command_is_echoed_by_a_polling_application(
    emulator: FaultyBotApi, start_app: AppStarter
) -> None:
    await start_app(CommandHandler("echo", echo))

    sent = await emulator.send_text("/echo hello world", first_name="Ada")
    reply = await emulator.wait_for(kind="message", chat_id=USER_ID)

    assert reply.text == "hello world"
    assert reply.message is not None
    assert reply.message["from"] == {
        "id": BOT_ID,
        "is_bot": True,
        "first_name": "colabot",
        "username": BOT_USERNAME,
    }
    assert reply.message["chat"] == {"id": USER_ID, "type": "private", "first_name": "Ada"}
    assert reply.message["reply_to_message"]["message_id"] == sent["message_id"]
    assert reply.message["message_id"] == sent["message_id"] + 1
    assert isinstance(reply.message["date"], int)
    assert emulator.last_text(USER_ID) == "hello world"
    assert not [call for call in emulator.calls if call.status == 409]


async def test_command_addressed_to_the_bot_matches_and_to_another_bot_does_not(
    emulator: FaultyBotApi, start_app: AppStarter
) -> None:
    await start_app(CommandHandler("echo", echo))

    await emulator.send_text(f"/echo@{BOT_USERNAME} mine")
    await emulator.send_text("/echo@some_other_bot theirs")
    await emulator.send_text("/echo last")

    first = await emulator.wait_for(kind="message")
    second = await emulator.wait_for(kind="message")
    assert (first.text, second.text) == ("mine", "last")


async def test_edit_applies_and_an_identical_edit_is_refused(
    emulator: FaultyBotApi, bot: Bot
) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Stop", callback_data="stop")]])
    message = await bot.send_message(USER_ID, "Job 1: 10%", reply_markup=keyboard)

    edited = await bot.edit_message_text(
        "Job 1: 50%", chat_id=USER_ID, message_id=message.message_id, reply_markup=keyboard
    )
    event = await emulator.wait_for(kind="edit")

    assert isinstance(edited, type(message))
    assert edited.text == "Job 1: 50%"
    assert edited.edit_date is not None
    assert event.text == "Job 1: 50%"
    assert emulator.messages(USER_ID)[-1]["text"] == "Job 1: 50%"
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text(
            "Job 1: 50%", chat_id=USER_ID, message_id=message.message_id, reply_markup=keyboard
        )
    without_buttons = await bot.edit_message_text(
        "Job 1: 50%", chat_id=USER_ID, message_id=message.message_id
    )
    assert isinstance(without_buttons, type(message))
    assert without_buttons.reply_markup is None


async def test_edits_of_missing_or_foreign_messages_fail_like_telegram(
    emulator: FaultyBotApi, bot: Bot
) -> None:
    user_message = await emulator.send_text("hi")

    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", chat_id=USER_ID, message_id=999)
    with pytest.raises(BadRequest, match="Message can't be edited"):
        await bot.edit_message_text("x", chat_id=USER_ID, message_id=user_message["message_id"])


async def test_bad_parameters_answer_in_telegrams_words(bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(424242, "hello")
    with pytest.raises(BadRequest, match="Message text is empty"):
        await bot.send_message(USER_ID, "   ")
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(USER_ID, "x" * 4097)
    with pytest.raises(BadRequest, match="Message to be replied not found"):
        await bot.send_message(USER_ID, "hi", reply_parameters=ReplyParameters(message_id=77))
    with pytest.raises(BadRequest, match="Can't parse entities"):
        await bot.send_message(USER_ID, "loss < 0.5", parse_mode="HTML")
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(
            USER_ID,
            "hi",
            reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton("x", callback_data="x" * 65)]]
            ),
        )


async def test_formatted_text_is_stored_as_plain_text_with_entities(
    emulator: FaultyBotApi, bot: Bot
) -> None:
    message = await bot.send_message(USER_ID, "<b>Job 3</b> done &lt;3", parse_mode="HTML")

    event = await emulator.wait_for(kind="message")
    assert message.text == "Job 3 done <3"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [("bold", 0, 5)]
    assert event.parse_mode == "HTML"


async def test_replies_by_id_and_by_reply_parameters(emulator: FaultyBotApi, bot: Bot) -> None:
    question = await emulator.send_text("status?")

    by_parameters = await bot.send_message(
        USER_ID, "fine", reply_parameters=ReplyParameters(message_id=question["message_id"])
    )
    by_id = await bot.send_message(
        USER_ID, "still fine", reply_to_message_id=question["message_id"]
    )

    for reply in (by_parameters, by_id):
        assert reply.reply_to_message is not None
        assert reply.reply_to_message.text == "status?"


async def test_user_document_downloads_with_identical_bytes(
    emulator: FaultyBotApi, start_app: AppStarter, tmp_path: Path
) -> None:
    target = tmp_path / "downloaded.bin"
    payload = bytes(range(256)) * 64

    async def on_document(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None and message.document is not None
        telegram_file = await context.bot.get_file(message.document.file_id)
        await telegram_file.download_to_drive(target)
        await message.reply_text(f"got {message.document.file_name} for {message.caption}")

    await start_app(MessageHandler(filters.Document.ALL, on_document))
    sent = await emulator.send_document(payload, "data.zip", caption="/train selftest")

    reply = await emulator.wait_for(kind="message")
    assert reply.text == "got data.zip for /train selftest"
    assert target.read_bytes() == payload
    assert sent["caption_entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert sent["document"]["mime_type"] == "application/zip"
    assert sent["document"]["file_size"] == len(payload)


async def test_get_file_refuses_files_over_twenty_megabytes(
    emulator: FaultyBotApi, bot: Bot
) -> None:
    big = await emulator.send_document(b"pretend", "big.zip", reported_size=25 * MB)
    small = await emulator.send_document(b"small", "small.txt")

    with pytest.raises(BadRequest, match="File is too big"):
        await bot.get_file(big["document"]["file_id"])
    info = await bot.get_file(small["document"]["file_id"])
    assert info.file_size == 5
    assert info.file_path is not None and info.file_path.startswith(emulator.base_file_url)
    assert bytes(await info.download_as_bytearray()) == b"small"


async def test_bot_documents_and_photos_are_saved_locally(
    emulator: FaultyBotApi, bot: Bot, files_dir: Path
) -> None:
    document = await bot.send_document(
        USER_ID, b"loss,0.1\n", filename="metrics.csv", caption="<i>results</i>", parse_mode="HTML"
    )
    photo = await bot.send_photo(USER_ID, png_bytes(64, 32), caption="loss curve")

    doc_event = await emulator.wait_for(kind="document")
    photo_event = await emulator.wait_for(kind="photo")
    assert doc_event.file_path is not None and doc_event.file_path.read_bytes() == b"loss,0.1\n"
    assert doc_event.file_path.is_relative_to(files_dir)
    assert document.document is not None
    assert document.document.file_name == "metrics.csv"
    assert document.caption == "results"
    assert photo_event.file_path is not None
    assert photo_event.file_path.read_bytes() == png_bytes(64, 32)
    assert (photo.photo[-1].width, photo.photo[-1].height) == (64, 32)
    assert photo_event.text == "loss curve"

    again = await bot.send_document(USER_ID, document.document.file_id)
    assert again.document is not None
    assert again.document.file_unique_id == document.document.file_unique_id
    assert (await emulator.wait_for(kind="document")).file_path == doc_event.file_path


async def test_uploads_over_the_limits_are_refused(bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Image_process_failed"):
        await bot.send_photo(USER_ID, b"not an image", filename="x.png")
    with pytest.raises(NetworkError, match="Request Entity Too Large"):
        await bot.send_photo(USER_ID, png_bytes(8, 8) + b"\x00" * (10 * MB), filename="big.png")


async def test_button_press_reaches_the_bot_and_its_answer_is_recorded(
    emulator: FaultyBotApi, start_app: AppStarter
) -> None:
    async def menu(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        keyboard = [[InlineKeyboardButton("Status", callback_data="status:7")]]
        await update.effective_message.reply_text(
            "Job 7", reply_markup=InlineKeyboardMarkup(keyboard)
        )

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and query.message is not None
        await query.answer(f"you pressed {query.data}")
        await query.edit_message_text(f"Job 7 ({query.from_user.first_name} asked)")

    await start_app(CommandHandler("menu", menu), CallbackQueryHandler(pressed))
    await emulator.send_text("/menu", first_name="Ada")
    shown = await emulator.wait_for(kind="message")
    assert shown.message_id is not None

    query_id = await emulator.press_button(USER_ID, shown.message_id, "status:7")

    answer = await emulator.wait_for(kind="callback_answer")
    edit = await emulator.wait_for(kind="edit")
    assert answer.callback is not None
    assert answer.callback["id"] == query_id
    assert answer.text == "you pressed status:7"
    assert edit.text == "Job 7 (Ada asked)"
    assert emulator.message(USER_ID, shown.message_id) == edit.message
    with pytest.raises(ValueError, match="no button"):
        await emulator.press_button(USER_ID, shown.message_id, "status:7")


async def test_a_callback_query_can_be_answered_once(emulator: FaultyBotApi, bot: Bot) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Go", callback_data="go")]])
    message = await bot.send_message(USER_ID, "Pick", reply_markup=keyboard)
    query_id = await emulator.press_button(USER_ID, message.message_id, "go")

    updates = await bot.get_updates()
    assert updates[-1].callback_query is not None
    assert updates[-1].callback_query.id == query_id
    assert updates[-1].callback_query.data == "go"
    assert await bot.answer_callback_query(query_id, "ok")
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query(query_id, "again")


async def test_injected_429_raises_retry_after_and_5xx_network_error(
    emulator: FaultyBotApi, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    emulator.inject_failure("sendMessage", 429, retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(USER_ID, "hi")
    assert caught.value.retry_after == dtm.timedelta(seconds=7)

    emulator.inject_failure("sendMessage", 502, times=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(USER_ID, "hi")
    emulator.inject_failure("getMe", 500)
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.get_me()

    assert (await bot.send_message(USER_ID, "finally")).text == "finally"
    statuses = [call.status for call in emulator.calls if call.method == "sendMessage"]
    assert statuses == [429, 502, 502, 200]


async def test_injected_429_body_is_shaped_like_telegrams(emulator: FaultyBotApi) -> None:
    emulator.inject_failure("getMe", 429, retry_after=3)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{emulator.base_url}{emulator.token}/getMe") as response,
    ):
        assert response.status == 429
        assert await response.json() == {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 3",
            "parameters": {"retry_after": 3},
        }


async def test_rate_limited_application_retries_after_429(
    emulator: FaultyBotApi, start_app: AppStarter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    await start_app(CommandHandler("echo", echo), rate_limiter=AIORateLimiter(max_retries=1))
    emulator.inject_failure("sendMessage", 429, retry_after=1)

    await emulator.send_text("/echo patient")

    reply = await emulator.wait_for(kind="message")
    assert reply.text == "patient"
    statuses = [call.status for call in emulator.calls if call.method == "sendMessage"]
    assert statuses == [429, 200]


async def test_dropped_connections_surface_as_network_errors(
    emulator: FaultyBotApi, files_dir: Path
) -> None:
    emulator.add_chat(USER_ID)
    impatient = Bot(
        emulator.token,
        base_url=emulator.base_url,
        base_file_url=emulator.base_file_url,
        request=HTTPXRequest(read_timeout=0.5),
    )
    async with impatient:
        emulator.inject_drop("sendMessage")
        with pytest.raises(NetworkError, match="disconnected"):
            await impatient.send_message(USER_ID, "lost")
        emulator.inject_drop("sendMessage", delay=5)
        with pytest.raises(TimedOut):
            await impatient.send_message(USER_ID, "slow")
        assert (await impatient.send_message(USER_ID, "works")).text == "works"


async def test_form_multipart_and_json_bodies_are_all_understood(
    emulator: FaultyBotApi,
) -> None:
    emulator.add_chat(USER_ID)
    keyboard = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    url = f"{emulator.base_url}{emulator.token}"
    async with aiohttp.ClientSession() as session:
        form = {"chat_id": str(USER_ID), "text": "form", "reply_markup": json.dumps(keyboard)}
        async with session.post(f"{url}/sendMessage", data=form) as response:
            first = await response.json()

        multipart = aiohttp.FormData(default_to_multipart=True)
        multipart.add_field("chat_id", str(USER_ID))
        multipart.add_field("text", "multipart")
        multipart.add_field(
            "reply_parameters", json.dumps({"message_id": first["result"]["message_id"]})
        )
        async with session.post(f"{url}/sendMessage", data=multipart) as response:
            second = await response.json()

        upload = aiohttp.FormData()
        upload.add_field("chat_id", str(USER_ID))
        upload.add_field("document", b"abc", filename="notes.txt", content_type="text/plain")
        async with session.post(f"{url}/sendDocument", data=upload) as response:
            third = await response.json()

        body = {"chat_id": USER_ID, "text": "json", "reply_markup": keyboard}
        async with session.post(f"{url}/sendMessage", json=body) as response:
            fourth = await response.json()

        async with session.get(f"{url}/getMe") as response:
            me = await response.json()

    assert first["result"]["reply_markup"] == keyboard
    assert second["result"]["reply_to_message"]["text"] == "form"
    assert third["result"]["document"]["file_name"] == "notes.txt"
    assert third["result"]["document"]["mime_type"] == "text/plain"
    assert fourth["result"]["reply_markup"] == keyboard
    assert me["result"]["id"] == BOT_ID
    texts = [call.params.get("text") for call in emulator.calls if call.method == "sendMessage"]
    assert texts == ["form", "multipart", "json"]


async def test_getupdates_confirms_by_offset_and_honours_limit(
    emulator: FaultyBotApi, bot: Bot
) -> None:
    for text in ("one", "two", "three"):
        await emulator.send_text(text)

    first_two = await bot.get_updates(limit=2)
    assert [u.message.text for u in first_two if u.message] == ["one", "two"]
    rest = await bot.get_updates(offset=first_two[-1].update_id + 1)
    assert [u.message.text for u in rest if u.message] == ["three"]
    assert await bot.get_updates(offset=rest[-1].update_id + 1) == ()

    await emulator.send_text("four")
    await emulator.send_text("five")
    latest = await bot.get_updates(offset=-1)
    assert [u.message.text for u in latest if u.message] == ["five"]


async def test_long_poll_returns_as_soon_as_an_update_arrives(
    emulator: FaultyBotApi, bot: Bot
) -> None:
    polling = asyncio.create_task(bot.get_updates(timeout=30))
    await emulator.wait_until_polling()

    await emulator.send_text("wake up")

    updates = await asyncio.wait_for(polling, timeout=5)
    assert [u.message.text for u in updates if u.message] == ["wake up"]


async def test_two_raw_pollers_conflict(emulator: FaultyBotApi) -> None:
    first = Bot(emulator.token, base_url=emulator.base_url, base_file_url=emulator.base_file_url)
    second = Bot(emulator.token, base_url=emulator.base_url, base_file_url=emulator.base_file_url)
    async with first, second:
        older = asyncio.create_task(first.get_updates(timeout=30))
        await emulator.wait_until_polling()

        assert await second.get_updates(timeout=0) == ()
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await older

    conflict = [call for call in emulator.calls if call.status == 409]
    assert len(conflict) == 1
    assert conflict[0].description == (
        "Conflict: terminated by other getUpdates request; "
        "make sure that only one bot instance is running"
    )


async def test_second_polling_application_makes_the_first_one_conflict(
    emulator: FaultyBotApi, start_app: AppStarter
) -> None:
    errors: asyncio.Queue[Exception] = asyncio.Queue()
    await start_app(error_callback=errors.put_nowait)
    await emulator.wait_until_polling()

    await start_app()

    error = await asyncio.wait_for(errors.get(), timeout=10)
    assert isinstance(error, Conflict)


async def test_only_the_token_made_at_this_start_is_accepted(
    emulator: FaultyBotApi, bot: Bot
) -> None:
    # Loopback is no trust boundary: another local user who finds the port, and knows how
    # a token looks, gets Telegram's 401 for every method and for files, and changes nothing.
    sent = await emulator.send_document(b"private bytes", "notes.txt")
    file = await bot.get_file(sent["document"]["file_id"])
    assert file.file_path is not None and emulator.token in file.file_path
    unauthorized = {"ok": False, "error_code": 401, "description": "Unauthorized"}
    same_bot = f"{BOT_ID}:{'A' * 35}"
    for wrong in (same_bot, "1000001:offline-terminal-chat-token", "123:abc"):
        async with aiohttp.ClientSession() as session:
            for method in ("getMe", "getUpdates", "sendMessage"):
                url = f"{emulator.base_url}{wrong}/{method}"
                async with session.post(url, json={"chat_id": USER_ID, "text": "x"}) as response:
                    assert response.status == 401
                    assert await response.json() == unauthorized
            async with session.get(file.file_path.replace(emulator.token, wrong)) as response:
                assert response.status == 401
        with pytest.raises(InvalidToken):
            async with Bot(wrong, base_url=emulator.base_url):
                pass
    assert [call.method for call in emulator.calls] == ["getMe", "getFile"]
    assert emulator.last_text(USER_ID) is None
    updates = await bot.get_updates()
    assert [u.message.document.file_name for u in updates if u.message and u.message.document] == [
        "notes.txt"
    ]
    assert (await bot.get_file(sent["document"]["file_id"])).file_path == file.file_path


async def test_each_start_makes_a_new_token(files_dir: Path) -> None:
    emulator = FaultyBotApi(files_dir, bot_id=BOT_ID)
    await emulator.start()
    try:
        first = emulator.token
        assert first.startswith(f"{BOT_ID}:") and len(first.partition(":")[2]) == 35
    finally:
        await emulator.stop()
    with pytest.raises(RuntimeError, match="not running"):
        _ = emulator.token
    await emulator.start()
    try:
        assert emulator.token != first
        with pytest.raises(InvalidToken):
            async with Bot(first, base_url=emulator.base_url):
                pass
        async with Bot(emulator.token, base_url=emulator.base_url) as telegram_bot:
            assert telegram_bot.id == BOT_ID
    finally:
        await emulator.stop()


async def test_malformed_token_is_unauthorized(emulator: FaultyBotApi) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{emulator.base_url}not-a-token/getMe") as response:
            assert response.status == 401
            assert await response.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }
        for method in ("sendTelepathy", "deleteMessage", "setMyCommands"):
            # Only the methods colabot calls are served; the others answer as unknown ones do.
            async with session.post(f"{emulator.base_url}{emulator.token}/{method}") as response:
                assert response.status == 404
                assert (await response.json())["description"] == "Not Found: method not found"

    with pytest.raises(InvalidToken):
        async with Bot("not-a-token", base_url=emulator.base_url):
            pass


async def test_wait_for_times_out_with_a_list_of_recent_events(
    emulator: FaultyBotApi, bot: Bot
) -> None:
    await bot.send_message(USER_ID, "only this")

    with pytest.raises(TimeoutError, match="only this") as caught:
        await emulator.wait_for(kind="photo", timeout=0.2)
    assert "kind=photo" in str(caught.value)


async def test_events_reach_subscribers_and_each_wait_gets_its_own(
    emulator: FaultyBotApi, bot: Bot
) -> None:
    queue = emulator.subscribe()
    await bot.send_message(USER_ID, "a")
    await bot.send_message(USER_ID, "b")

    assert [(await queue.get()).text for _ in range(2)] == ["a", "b"]
    later = await emulator.wait_for(lambda e: e.text == "b")
    earlier = await emulator.wait_for()
    assert (earlier.text, later.text) == ("a", "b")
    emulator.unsubscribe(queue)


async def test_the_token_never_reaches_the_logs(
    emulator: FaultyBotApi, caplog: pytest.LogCaptureFixture
) -> None:
    secret = emulator.token.partition(":")[2]
    wrong = f"{BOT_ID}:WRONGtokenWRONGtokenWRONG"
    caplog.set_level(logging.DEBUG, logger="emulator")
    emulator.add_chat(USER_ID)
    emulator.inject_failure("sendMessage", 400, "Bad Request: planned")
    async with Bot(emulator.token, base_url=emulator.base_url) as telegram_bot:
        with pytest.raises(BadRequest):
            await telegram_bot.send_message(USER_ID, "x")
        await telegram_bot.send_message(USER_ID, "y")
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{emulator.base_url}{wrong}/getMe") as response,
    ):
        assert response.status == 401

    emulator_logs: list[Any] = [r for r in caplog.records if r.name.startswith("emulator")]
    assert emulator_logs
    assert all(secret not in record.getMessage() for record in emulator_logs)
    assert all("WRONGtoken" not in record.getMessage() for record in emulator_logs)
