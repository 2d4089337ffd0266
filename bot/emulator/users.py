"""What people do in the emulated chats: write, upload, press buttons.

Each action adds to the chat and queues the update Telegram would deliver to the bot. Misuse
(an empty text, a button that is not there) raises :class:`ValueError` with a plain message.
"""

from __future__ import annotations

from bot.emulator.formatting import detect_entities, utf16_len
from bot.emulator.state import (
    MAX_CAPTION_LENGTH,
    MAX_MESSAGE_LENGTH,
    ChatRecord,
    EmulatorState,
    JSONDict,
    MessageRecord,
    StoredFile,
    chat_instance,
    inline_buttons,
)


def user_chat(
    state: EmulatorState,
    user_id: int,
    chat_id: int | None,
    first_name: str | None,
    username: str | None = None,
) -> tuple[JSONDict, ChatRecord]:
    """Return the user and the chat they write in, creating either as needed."""
    user = state.user(user_id, first_name, username)
    target = user_id if chat_id is None else chat_id
    if target > 0 and target != user_id:
        raise ValueError(f"chat {target} is the private chat of another user")
    return user, state.add_chat(target, user=user)


def _reply_target(
    state: EmulatorState, chat: ChatRecord, reply_to_message_id: int | None
) -> MessageRecord | None:
    if reply_to_message_id is None:
        return None
    target = state.get_message(chat.chat_id, reply_to_message_id)
    if target is None:
        raise ValueError(f"there is no message #{reply_to_message_id} in chat {chat.chat_id}")
    return target


def write_text(
    state: EmulatorState,
    user: JSONDict,
    chat: ChatRecord,
    text: str,
    *,
    reply_to_message_id: int | None = None,
) -> MessageRecord:
    """Add a text message from ``user`` and queue its ``message`` update."""
    if not text.strip():
        raise ValueError("a message needs some text")
    if utf16_len(text) > MAX_MESSAGE_LENGTH:
        raise ValueError(f"a message holds at most {MAX_MESSAGE_LENGTH} characters")
    content: JSONDict = {"text": text}
    entities = detect_entities(text)
    if entities:
        content["entities"] = entities
    reply_to = _reply_target(state, chat, reply_to_message_id)
    record = state.add_message(chat, user, content, reply_to=reply_to)
    state.queue_update("message", record.message)
    return record


def edit_text(
    state: EmulatorState, user: JSONDict, chat_id: int, message_id: int, text: str
) -> MessageRecord:
    """Edit a text message ``user`` wrote and queue the ``edited_message`` update."""
    record = state.get_message(chat_id, message_id)
    if record is None:
        raise ValueError(f"there is no message #{message_id} in chat {chat_id}")
    if record.message.get("from", {}).get("id") != user["id"] or "text" not in record.message:
        raise ValueError(f"message #{message_id} is not a text message of user {user['id']}")
    changes: JSONDict = {"text": text}
    entities = detect_entities(text)
    if entities:
        changes["entities"] = entities
    state.edit_message(record, changes, removed=("entities",))
    state.queue_update("edited_message", record.message)
    return record


def post_document(
    state: EmulatorState,
    user: JSONDict,
    chat: ChatRecord,
    stored: StoredFile,
    caption: str | None,
    *,
    reply_to_message_id: int | None = None,
) -> MessageRecord:
    """Add a document message from ``user`` and queue its ``message`` update."""
    content: JSONDict = {"document": stored.to_api()}
    if caption:
        if utf16_len(caption) > MAX_CAPTION_LENGTH:
            raise ValueError(f"a caption holds at most {MAX_CAPTION_LENGTH} characters")
        content["caption"] = caption
        entities = detect_entities(caption)
        if entities:
            content["caption_entities"] = entities
    reply_to = _reply_target(state, chat, reply_to_message_id)
    record = state.add_message(chat, user, content, reply_to=reply_to, local_path=stored.local_path)
    state.queue_update("message", record.message)
    return record


def press(
    state: EmulatorState, user: JSONDict, chat_id: int, message_id: int, callback_data: str
) -> str:
    """Press the button carrying ``callback_data``; queue the ``callback_query``; return its id."""
    record = state.get_message(chat_id, message_id)
    if record is None:
        raise ValueError(f"there is no message #{message_id} in chat {chat_id}")
    buttons = inline_buttons(record.message)
    if not any(button.get("callback_data") == callback_data for button in buttons):
        offered = ", ".join(repr(b.get("callback_data")) for b in buttons) or "none"
        raise ValueError(
            f"message #{message_id} has no button with callback_data {callback_data!r} "
            f"(buttons: {offered})"
        )
    query = state.add_callback_query(record, int(user["id"]), callback_data)
    state.queue_update(
        "callback_query",
        {
            "id": query.id,
            "from": user,
            "message": record.message,
            "chat_instance": chat_instance(chat_id),
            "data": callback_data,
        },
    )
    return query.id
