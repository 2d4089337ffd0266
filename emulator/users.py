"""What people do in the emulated chats: write, upload, press buttons.

Each action adds to the chat and queues the update Telegram would deliver to the bot. Misuse
(an empty text, a button that is not there) raises :class:`ValueError` with a plain message.
"""

from __future__ import annotations

from emulator.formatting import detect_entities, utf16_len
from emulator.state import (
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


def _topic(chat: ChatRecord, thread_id: int | None, reply_to: MessageRecord | None) -> JSONDict:
    """The topic fields of a person's message in a forum (the replied message's topic by
    default)."""
    if thread_id is None and reply_to is not None:
        thread_id = reply_to.message.get("message_thread_id")
    if thread_id is None:
        return {}
    if thread_id not in chat.topics:
        raise ValueError(f"chat {chat.chat_id} has no topic {thread_id}")
    return {"message_thread_id": thread_id, "is_topic_message": True}


def write_text(
    state: EmulatorState,
    user: JSONDict,
    chat: ChatRecord,
    text: str,
    *,
    reply_to_message_id: int | None = None,
    thread_id: int | None = None,
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
    content.update(_topic(chat, thread_id, reply_to))
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


def post_media(
    state: EmulatorState,
    user: JSONDict,
    chat: ChatRecord,
    stored: StoredFile,
    caption: str | None,
    *,
    reply_to_message_id: int | None = None,
) -> MessageRecord:
    """Add a video or animation message from ``user`` and queue its ``message`` update.

    An animation message also carries the file as ``document``, as Telegram's do.
    """
    content: JSONDict = {stored.kind: stored.to_api()}
    if stored.kind == "animation":
        content["document"] = {
            key: value
            for key, value in stored.to_api().items()
            if key not in ("width", "height", "duration")
        }
    if caption:
        content["caption"] = caption
        entities = detect_entities(caption)
        if entities:
            content["caption_entities"] = entities
    reply_to = _reply_target(state, chat, reply_to_message_id)
    record = state.add_message(chat, user, content, reply_to=reply_to, local_path=stored.local_path)
    state.queue_update("message", record.message)
    return record


def create_topic(state: EmulatorState, user: JSONDict, chat_id: int, name: str) -> int:
    """Open a forum topic: its service message's id becomes the topic's thread id."""
    chat = state.get_chat(chat_id)
    if chat is None or chat.chat["type"] != "supergroup":
        raise ValueError(f"chat {chat_id} is not a supergroup")
    chat.chat["is_forum"] = True
    record = state.add_message(
        chat, user, {"forum_topic_created": {"name": name, "icon_color": 7322096}}
    )
    chat.topics.add(record.message_id)
    record.message["message_thread_id"] = record.message_id
    record.message["is_topic_message"] = True
    state.queue_update("message", record.message)
    return record.message_id


def upgrade_group(state: EmulatorState, user: JSONDict, chat_id: int, *, announce: bool) -> int:
    """Make a group a supergroup with a new id; the old one answers with migrate_to_chat_id."""
    old = state.get_chat(chat_id)
    if old is None or old.chat["type"] != "group":
        raise ValueError(f"chat {chat_id} is not a basic group")
    new_id = -1_000_000_000_000 - abs(chat_id)
    new = state.add_chat(new_id, title=old.chat.get("title"))
    if announce:
        moved = state.add_message(old, user, {"migrate_to_chat_id": new_id})
        state.queue_update("message", moved.message)
        arrived = state.add_message(new, user, {"migrate_from_chat_id": chat_id})
        state.queue_update("message", arrived.message)
    old.migrated_to = new_id
    return new_id


def remove_bot(state: EmulatorState, user: JSONDict, chat_id: int, bot: JSONDict) -> None:
    """Kick the bot from a group (or block it in a private chat) and queue my_chat_member."""
    chat = state.get_chat(chat_id)
    if chat is None:
        raise ValueError(f"there is no chat {chat_id}")
    new_status = "kicked"
    chat.bot_status = new_status
    state.queue_update(
        "my_chat_member",
        {
            "chat": chat.chat,
            "from": user,
            "date": state.now(),
            "old_chat_member": {"user": bot, "status": "member"},
            "new_chat_member": {"user": bot, "status": new_status, "until_date": 0},
        },
    )


def add_members(
    state: EmulatorState, user: JSONDict, chat_id: int, member_ids: list[int]
) -> MessageRecord:
    """Add people to a group: the ``new_chat_members`` service message."""
    chat = state.get_chat(chat_id)
    if chat is None or chat_id > 0:
        raise ValueError(f"chat {chat_id} is not a group")
    members = [state.user(member) for member in member_ids]
    record = state.add_message(chat, user, {"new_chat_members": members})
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
