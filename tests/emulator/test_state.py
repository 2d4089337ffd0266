"""The pure parts: data model, people's actions, formatting, parameters, media facts."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from emulator import users
from emulator.errors import ApiError, default_description
from emulator.formatting import FormattingError, detect_entities, parse_text, utf16_len
from emulator.media import image_size
from emulator.params import Params
from emulator.state import EmulatorState, inline_buttons, json_copy
from tests.emulator.helpers import png_bytes

BOT = {"id": 123, "is_bot": True, "first_name": "colabot", "username": "colabot_test_bot"}


@pytest.fixture
def state() -> EmulatorState:
    return EmulatorState(clock=lambda: 1_700_000_000.5)


def test_message_ids_increase_per_chat_and_dates_are_unix_ints(state: EmulatorState) -> None:
    ada, ada_chat = users.user_chat(state, 1, None, "Ada")
    bob, bob_chat = users.user_chat(state, 2, None, "Bob")

    ids = [users.write_text(state, ada, ada_chat, f"m{i}").message_id for i in range(3)]
    reply = state.add_message(ada_chat, BOT, {"text": "hi"})
    other = users.write_text(state, bob, bob_chat, "hello")

    assert ids == [1, 2, 3]
    assert reply.message_id == 4
    assert other.message_id == 1
    assert reply.message["date"] == 1_700_000_000
    assert reply.message["chat"] == {"id": 1, "type": "private", "first_name": "Ada"}
    assert other.message["from"]["is_bot"] is False


def test_chat_types_follow_the_id(state: EmulatorState) -> None:
    assert state.add_chat(5).chat["type"] == "private"
    assert state.add_chat(-42, title="Lab").chat == {"id": -42, "type": "group", "title": "Lab"}
    assert state.add_chat(-1001234567890).chat["type"] == "supergroup"


def test_a_person_cannot_write_in_someone_elses_private_chat(state: EmulatorState) -> None:
    with pytest.raises(ValueError, match="private chat of another user"):
        users.user_chat(state, 1, 2, None)


def test_commands_get_a_bot_command_entity_at_offset_zero(state: EmulatorState) -> None:
    user, chat = users.user_chat(state, 1, None, None)

    plain = users.write_text(state, user, chat, "/train@colabot_test_bot selftest")

    assert plain.message["entities"] == [{"type": "bot_command", "offset": 0, "length": 23}]
    assert state.updates[-1]["message"] == plain.message


def test_person_input_errors_are_value_errors(state: EmulatorState) -> None:
    user, chat = users.user_chat(state, 1, None, None)
    with pytest.raises(ValueError, match="needs some text"):
        users.write_text(state, user, chat, "  ")
    with pytest.raises(ValueError, match="no message #9"):
        users.write_text(state, user, chat, "hi", reply_to_message_id=9)
    sent = state.add_message(chat, BOT, {"text": "menu"})
    with pytest.raises(ValueError, match="no button"):
        users.press(state, user, 1, sent.message_id, "missing")


def test_pressing_a_button_queues_a_callback_query(state: EmulatorState) -> None:
    user, chat = users.user_chat(state, 1, None, "Ada")
    keyboard = {
        "inline_keyboard": [[{"text": "A", "callback_data": "a"}], [{"text": "B", "url": "u"}]]
    }
    menu = state.add_message(chat, BOT, {"text": "menu", "reply_markup": keyboard})

    query_id = users.press(state, user, 1, menu.message_id, "a")

    query = state.updates[-1]["callback_query"]
    assert query["id"] == query_id
    assert query["data"] == "a"
    assert query["message"]["message_id"] == menu.message_id
    assert query["from"]["first_name"] == "Ada"
    assert isinstance(query["chat_instance"], str)
    assert [b["text"] for b in inline_buttons(menu.message)] == ["A", "B"]


def test_updates_are_dropped_only_when_a_later_offset_confirms_them(
    state: EmulatorState,
) -> None:
    for kind in ("message", "message", "message"):
        state.queue_update(kind, {"text": "x"})
    ids = [u["update_id"] for u in state.pending_updates()]

    assert [u["update_id"] for u in state.pending_updates(limit=2)] == ids[:2]
    assert len(state.pending_updates()) == 3
    state.confirm_updates(ids[1])
    assert [u["update_id"] for u in state.pending_updates()] == ids[1:]
    state.confirm_updates(-1)
    assert [u["update_id"] for u in state.pending_updates()] == ids[2:]
    state.confirm_updates(ids[2] + 1)
    assert state.pending_updates() == []


def test_allowed_updates_filter_what_is_queued(state: EmulatorState) -> None:
    state.set_allowed_updates(["callback_query"])
    assert state.queue_update("message", {}) is None
    assert state.queue_update("callback_query", {}) is not None
    state.set_allowed_updates([])
    assert state.queue_update("message", {}) is not None
    assert state.queue_update("message_reaction", {}) is None


def test_edits_stamp_edit_date_and_deletes_remove(state: EmulatorState) -> None:
    chat = state.add_chat(1)
    record = state.add_message(chat, BOT, {"text": "a", "reply_markup": {"inline_keyboard": []}})

    state.edit_message(record, {"text": "b"}, ("reply_markup",))

    assert record.message["text"] == "b"
    assert "reply_markup" not in record.message
    assert record.message["edit_date"] == 1_700_000_000
    assert state.delete_message(1, record.message_id) is record
    assert state.get_message(1, record.message_id) is None
    assert state.delete_message(1, record.message_id) is None


def test_files_get_distinct_ids_and_telegram_style_paths(state: EmulatorState) -> None:
    document = state.add_file("document", Path("/x/0001-data.zip"), file_size=10, file_name="d")
    photo = state.add_file("photo", Path("/x/0002-plot.png"), file_size=5, width=3, height=4)

    assert document.file_id != photo.file_id
    assert document.file_unique_id != photo.file_unique_id
    assert document.file_path == "documents/file_1.zip"
    assert photo.file_path == "photos/file_2.jpg"
    assert state.files_by_path[photo.file_path] is photo
    assert photo.to_api() == {
        "file_id": photo.file_id,
        "file_unique_id": photo.file_unique_id,
        "file_size": 5,
        "width": 3,
        "height": 4,
    }
    assert set(document.file_info()) == {"file_id", "file_unique_id", "file_size", "file_path"}


@pytest.mark.parametrize(
    ("text", "mode", "plain", "entities"),
    [
        ("<b>bold</b> &amp; <i>it</i>", "HTML", "bold & it", [("bold", 0, 4), ("italic", 7, 2)]),
        ('<a href="https://x.org">x</a>', "html", "x", [("text_link", 0, 1)]),
        ('<pre><code class="language-py">1</code></pre>', "HTML", "1", [("pre", 0, 1)]),
        ("😀 <b>b</b>", "HTML", "😀 b", [("bold", 3, 1)]),
        ("x&lt;y &#33; &nbsp;", "HTML", "x<y ! &nbsp;", []),
        ('<span class="tg-spoiler">p</span>', "HTML", "p", [("spoiler", 0, 1)]),
    ],
)
def test_parse_modes_become_plain_text_and_entities(
    text: str, mode: str, plain: str, entities: list[tuple[str, int, int]]
) -> None:
    parsed, found = parse_text(text, mode)
    assert parsed == plain
    assert [(e["type"], e["offset"], e["length"]) for e in found] == entities


@pytest.mark.parametrize(
    ("text", "mode", "error"),
    [
        ("loss < 0.5", "HTML", "Empty tag name"),
        ("<div>x</div>", "HTML", 'Unsupported start tag "div"'),
        ("<b>x", "HTML", 'end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", "HTML", "Unmatched end tag"),
        ("</b>", "HTML", 'Unexpected end tag "b"'),
        ("<span>x</span>", "HTML", 'must have class "tg-spoiler"'),
        ("<b", "HTML", 'Unclosed start tag "b"'),
    ],
)
def test_bad_markup_is_refused_like_telegram(text: str, mode: str, error: str) -> None:
    with pytest.raises(FormattingError, match=error):
        parse_text(text, mode)


@pytest.mark.parametrize("mode", ["Markdown", "MarkdownV2", "BBCode"])
def test_parse_modes_colabot_never_sends_are_refused(mode: str) -> None:
    with pytest.raises(ValueError, match="unsupported parse_mode"):
        parse_text("*b*", mode)


def test_unknown_parse_mode_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        parse_text("x", "BBCode")


def test_detected_entities_use_utf16_offsets() -> None:
    text = "🚀 /status see https://example.org/a. or @colabot_dev"

    found = [(e["type"], e["offset"], e["length"]) for e in detect_entities(text)]

    assert found == [("bot_command", 3, 7), ("url", 15, 21), ("mention", 41, 12)]
    assert utf16_len("🚀") == 2
    assert detect_entities("see /tmp/data or a/b") == []


def test_params_coerce_strings_and_report_errors_like_telegram() -> None:
    params = Params(
        {"chat_id": "42", "flag": "true", "markup": '{"a": 1}', "bad": "{", "n": "x"}, {}
    )

    assert params.require_int("chat_id") == 42
    assert params.flag("flag") is True
    assert params.flag("missing") is False
    assert params.json("markup", "markup") == {"a": 1}
    with pytest.raises(ApiError, match="can't parse thing JSON object"):
        params.json("bad", "thing")
    with pytest.raises(ApiError, match="message_id is empty"):
        params.require_int("message_id")
    with pytest.raises(ApiError, match="invalid n specified"):
        params.integer("n")


def test_error_bodies_match_telegrams_shape() -> None:
    error = ApiError(429, default_description(429, 5), retry_after=5)
    assert error.to_json() == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 5",
        "parameters": {"retry_after": 5},
    }
    assert default_description(502) == "Bad Gateway"


def test_image_sizes_are_read_from_headers() -> None:
    jpeg = (
        b"\xff\xd8"
        + b"\xff\xe0"
        + struct.pack(">H", 4)
        + b"JF"
        + (b"\xff\xc0" + struct.pack(">HBHH", 11, 8, 48, 64) + b"\x03")
    )
    gif = b"GIF89a" + struct.pack("<HH", 7, 9)

    assert image_size(png_bytes(10, 20)) == (10, 20)
    assert image_size(jpeg) == (64, 48)
    assert image_size(gif) == (7, 9)
    assert image_size(b"plain text") is None


def test_a_copied_message_shares_nothing_that_can_change() -> None:
    message: dict[str, Any] = {
        "message_id": 2,
        "chat": {"id": 1, "type": "private"},
        "entities": [{"type": "bold", "offset": 0, "length": 2}],
        "pair": ({"a": [1]}, "b"),
        "text": "hi",
        "date": 5,
        "has_protected_content": None,
    }
    copied = json_copy(message)
    assert copied == message
    copied["chat"]["id"] = 9
    copied["entities"][0]["length"] = 7
    copied["pair"][0]["a"].append(2)
    assert message["chat"] == {"id": 1, "type": "private"}
    assert message["entities"] == [{"type": "bold", "offset": 0, "length": 2}]
    assert message["pair"] == ({"a": [1]}, "b")
