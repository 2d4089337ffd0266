"""The emulated Telegram world: users, chats, messages, pending updates, files, callbacks.

Pure data: nothing here touches the network or the disk. Messages are kept as Bot API dicts,
exactly as a client would receive them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

if TYPE_CHECKING:
    from pathlib import Path

JSONDict = dict[str, Any]
FileKind = Literal["document", "photo", "video", "animation"]

DEFAULT_USER_ID = 1000
DEFAULT_FIRST_NAME = "User"
MAX_MESSAGE_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_UPDATES_PER_CALL = 100
# Update types Telegram leaves out unless a bot asks for them by name.
OPT_IN_UPDATE_TYPES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_SUPERGROUP_LIMIT = -1_000_000_000_000
T = TypeVar("T")


def json_copy(value: T) -> T:
    """A copy of JSON data (dicts, lists and plain values) that shares nothing mutable with
    it: what ``copy.deepcopy`` gives, three times as fast (every message is copied on its
    way in, into the journal, and out)."""
    return cast(T, _copied(value))


def _copied(value: Any) -> Any:
    if type(value) is dict:
        return {key: _copied(item) for key, item in value.items()}
    if type(value) is list:
        return [_copied(item) for item in value]
    if type(value) is tuple:
        return tuple(_copied(item) for item in value)
    return value


@dataclass
class MessageRecord:
    """One message in a chat as Telegram holds it, plus what only the emulator knows."""

    message: JSONDict
    parse_mode: str | None = None
    local_path: Path | None = None

    @property
    def message_id(self) -> int:
        """The message's id within its chat."""
        return int(self.message["message_id"])

    @property
    def chat_id(self) -> int:
        """The id of the chat the message is in."""
        return int(self.message["chat"]["id"])

    @property
    def from_bot(self) -> bool:
        """Whether a bot sent the message."""
        return bool(self.message.get("from", {}).get("is_bot", False))

    @property
    def text(self) -> str | None:
        """The text of a text message or the caption of a media message."""
        value = self.message.get("text", self.message.get("caption"))
        return value if isinstance(value, str) else None

    def snapshot(self) -> JSONDict:
        """Return a deep copy of the message, safe to hand out."""
        return json_copy(self.message)


@dataclass
class ChatRecord:
    """A chat: its Bot API object and its messages by id.

    ``migrated_to`` is set once a group became a supergroup (the bot must use the new id);
    ``bot_status`` becomes ``kicked`` or ``left`` when the bot was removed or blocked;
    ``topics`` are the forum topics' thread ids.
    """

    chat: JSONDict
    messages: dict[int, MessageRecord] = field(default_factory=dict)
    last_message_id: int = 0
    migrated_to: int | None = None
    bot_status: str = "member"
    topics: set[int] = field(default_factory=set)

    @property
    def chat_id(self) -> int:
        """The chat's id."""
        return int(self.chat["id"])


@dataclass(frozen=True)
class StoredFile:
    """A file Telegram keeps: what clients see (ids, size, path) and where it lies locally."""

    kind: FileKind
    file_id: str
    file_unique_id: str
    file_size: int
    file_path: str
    local_path: Path
    file_name: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None

    def to_api(self) -> JSONDict:
        """Return the Document, PhotoSize, Video or Animation object for messages."""
        data: JSONDict = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
        }
        if self.kind in ("photo", "video", "animation"):
            data["width"] = self.width or 0
            data["height"] = self.height or 0
        if self.kind == "photo":
            return data
        if self.kind in ("video", "animation"):
            data["duration"] = self.duration or 0
        if self.file_name is not None:
            data["file_name"] = self.file_name
        if self.mime_type is not None:
            data["mime_type"] = self.mime_type
        return data

    def file_info(self, local_root: str | None = None) -> JSONDict:
        """Return the File object ``getFile`` answers with. A ``--local`` server gives the
        file's absolute path on its own disk, ``<local_root>/<type>/<name>``, instead of a
        path to download."""
        path = self.file_path
        if local_root is not None:
            path = f"{local_root}/{self.file_path.split('/', 1)[0]}/{self.local_path.name}"
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
            "file_path": path,
        }


@dataclass
class CallbackQueryRecord:
    """A button press waiting for (or having received) ``answerCallbackQuery``."""

    id: str
    chat_id: int
    message_id: int
    user_id: int
    data: str
    answered: bool = False
    pressed_at: float = 0.0


class EmulatorState:
    """Everything the emulated Bot API remembers, with the operations that change it."""

    def __init__(self, *, clock: Callable[[], float] = time.time, first_update_id: int = 1) -> None:
        self._clock = clock
        self.users: dict[int, JSONDict] = {}
        self.chats: dict[int, ChatRecord] = {}
        self.updates: list[JSONDict] = []
        self.allowed_updates: frozenset[str] | None = None
        self.files: dict[str, StoredFile] = {}
        self.files_by_path: dict[str, StoredFile] = {}
        self.callback_queries: dict[str, CallbackQueryRecord] = {}
        self.commands: dict[str, list[JSONDict]] = {}
        self.profile_photos: dict[int, list[StoredFile]] = {}
        self._next_update_id = first_update_id
        self._file_counter = 0
        self._callback_counter = 0

    def now(self) -> int:
        """Return the current time as Telegram's unix-seconds ``date``."""
        return int(self._clock())

    def clock(self) -> float:
        """The current time in seconds, as precise as the clock gives it."""
        return self._clock()

    # Users and chats

    def user(
        self, user_id: int, first_name: str | None = None, username: str | None = None
    ) -> JSONDict:
        """Return the User object for ``user_id``, creating or renaming it as asked."""
        known = self.users.get(user_id)
        if known is None:
            known = {
                "id": user_id,
                "is_bot": False,
                "first_name": first_name or DEFAULT_FIRST_NAME,
                "language_code": "en",
            }
            self.users[user_id] = known
        elif first_name:
            known["first_name"] = first_name
        if username:
            known["username"] = username
        return known

    def add_chat(
        self, chat_id: int, *, user: JSONDict | None = None, title: str | None = None
    ) -> ChatRecord:
        """Return the chat ``chat_id``, creating it: private for a positive id, else a group."""
        existing = self.chats.get(chat_id)
        if existing is not None:
            return existing
        chat: JSONDict
        if chat_id > 0:
            owner = user if user is not None and user["id"] == chat_id else self.user(chat_id)
            chat = {"id": chat_id, "type": "private", "first_name": owner["first_name"]}
            if "username" in owner:
                chat["username"] = owner["username"]
        else:
            kind = "supergroup" if chat_id <= _SUPERGROUP_LIMIT else "group"
            chat = {"id": chat_id, "type": kind, "title": title or f"Group {-chat_id}"}
        record = ChatRecord(chat=chat)
        self.chats[chat_id] = record
        return record

    def get_chat(self, chat_id: int) -> ChatRecord | None:
        """Return the chat ``chat_id`` if it exists."""
        return self.chats.get(chat_id)

    # Messages

    def add_message(
        self,
        chat: ChatRecord,
        sender: JSONDict,
        content: JSONDict,
        *,
        reply_to: MessageRecord | None = None,
        parse_mode: str | None = None,
        local_path: Path | None = None,
    ) -> MessageRecord:
        """Append a message to ``chat`` with the next message id and return it."""
        chat.last_message_id += 1
        message: JSONDict = {
            "message_id": chat.last_message_id,
            "from": json_copy(sender),
            "chat": json_copy(chat.chat),
            "date": self.now(),
        }
        if reply_to is not None:
            replied = reply_to.snapshot()
            replied.pop("reply_to_message", None)
            message["reply_to_message"] = replied
        message.update(json_copy(content))
        record = MessageRecord(message=message, parse_mode=parse_mode, local_path=local_path)
        chat.messages[record.message_id] = record
        return record

    def get_message(self, chat_id: int, message_id: int) -> MessageRecord | None:
        """Return a message that still exists."""
        chat = self.chats.get(chat_id)
        return chat.messages.get(message_id) if chat is not None else None

    def edit_message(
        self,
        record: MessageRecord,
        changes: JSONDict,
        removed: tuple[str, ...] = (),
        *,
        parse_mode: str | None = None,
    ) -> MessageRecord:
        """Apply an edit to ``record`` in place, stamping ``edit_date``."""
        for key in removed:
            record.message.pop(key, None)
        record.message.update(json_copy(changes))
        record.message["edit_date"] = self.now()
        record.parse_mode = parse_mode
        return record

    def delete_message(self, chat_id: int, message_id: int) -> MessageRecord | None:
        """Remove a message and return it, or ``None`` if there was none."""
        chat = self.chats.get(chat_id)
        return chat.messages.pop(message_id, None) if chat is not None else None

    def messages(self, chat_id: int) -> list[MessageRecord]:
        """Return the messages of a chat in order."""
        chat = self.chats.get(chat_id)
        if chat is None:
            return []
        return [chat.messages[key] for key in sorted(chat.messages)]

    # Updates

    def queue_update(self, kind: str, payload: JSONDict) -> JSONDict | None:
        """Queue an update of type ``kind``; ``None`` when the bot opted out of that type."""
        if not self._wants(kind):
            return None
        update = {"update_id": self._next_update_id, kind: json_copy(payload)}
        self._next_update_id += 1
        self.updates.append(update)
        return update

    def _wants(self, kind: str) -> bool:
        if self.allowed_updates is None:
            return kind not in OPT_IN_UPDATE_TYPES
        return kind in self.allowed_updates

    def set_allowed_updates(self, kinds: list[str]) -> None:
        """Remember ``allowed_updates``; an empty list restores the default set."""
        self.allowed_updates = frozenset(kinds) if kinds else None

    def confirm_updates(self, offset: int) -> None:
        """Forget updates as ``getUpdates(offset=...)`` does, negative offsets included."""
        if offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        elif offset < 0:
            self.updates = self.updates[offset:]

    def pending_updates(self, limit: int = MAX_UPDATES_PER_CALL) -> list[JSONDict]:
        """Return up to ``limit`` unconfirmed updates, oldest first."""
        return json_copy(self.updates[: max(1, min(limit, MAX_UPDATES_PER_CALL))])

    def drop_pending_updates(self) -> None:
        """Forget every pending update."""
        self.updates.clear()

    # Files

    def add_file(
        self,
        kind: FileKind,
        local_path: Path,
        *,
        file_size: int,
        file_name: str | None = None,
        mime_type: str | None = None,
        width: int | None = None,
        height: int | None = None,
        duration: int | None = None,
    ) -> StoredFile:
        """Register a file and give it Telegram-style ids and a download path."""
        self._file_counter += 1
        number = self._file_counter
        prefix = {"photo": "AgAC", "video": "BAAC", "animation": "CgAC"}.get(kind, "BQAC")
        folder = {"photo": "photos", "video": "videos", "animation": "animations"}.get(
            kind, "documents"
        )
        suffix = ".jpg" if kind == "photo" else local_path.suffix
        stored = StoredFile(
            kind=kind,
            file_id=f"{prefix}AgIAAxkBAAE{number:08d}",
            file_unique_id=f"AQAD{number:06d}",
            file_size=file_size,
            file_path=f"{folder}/file_{number}{suffix}",
            local_path=local_path,
            file_name=file_name,
            mime_type=mime_type,
            width=width,
            height=height,
            duration=duration,
        )
        self.files[stored.file_id] = stored
        self.files_by_path[stored.file_path] = stored
        return stored

    # Callback queries

    def add_callback_query(
        self, message: MessageRecord, user_id: int, data: str
    ) -> CallbackQueryRecord:
        """Record a button press and return it with a fresh query id."""
        self._callback_counter += 1
        query = CallbackQueryRecord(
            id=str(4_000_000_000_000_000 + self._callback_counter),
            chat_id=message.chat_id,
            message_id=message.message_id,
            user_id=user_id,
            data=data,
            pressed_at=self._clock(),
        )
        self.callback_queries[query.id] = query
        return query


def chat_instance(chat_id: int) -> str:
    """Return a stable ``chat_instance`` string for callback queries from ``chat_id``."""
    return str((chat_id * 2_654_435_761) % 10**19)


def inline_buttons(message: JSONDict) -> list[JSONDict]:
    """Return a message's inline keyboard buttons in reading order."""
    markup = message.get("reply_markup") or {}
    rows = markup.get("inline_keyboard") or []
    return [button for row in rows for button in row if isinstance(button, dict)]
