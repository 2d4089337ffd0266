"""The Bot API methods a bot calls, answered the way Telegram answers them.

``getUpdates`` is not here: long polling belongs to the server, which owns the connections.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from emulator.errors import NOT_MODIFIED_DESCRIPTION, ApiError, bad_request
from emulator.flood import FloodGate
from emulator.formatting import FormattingError, merge_entities, parse_text, utf16_len
from emulator.media import guess_mime_type, image_size, photo_name
from emulator.mode import PHOTO_UPLOAD_LIMIT, ServerMode
from emulator.params import Params, UploadedFile, too_large
from emulator.state import (
    MAX_CALLBACK_DATA_BYTES,
    MAX_CAPTION_LENGTH,
    MAX_MESSAGE_LENGTH,
    ChatRecord,
    EmulatorState,
    JSONDict,
    MessageRecord,
    StoredFile,
)

if TYPE_CHECKING:
    from pathlib import Path

    from emulator.events import EventKind, Journal
    from emulator.storage import FileStore

MAX_PHOTO_SIDES = 10_000
MAX_PHOTO_RATIO = 20

_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
_QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"
_WRONG_FILE = "wrong file identifier/HTTP URL specified"

Handler = Callable[[JSONDict, Params], Awaitable[Any]]
SentKind = Literal["document", "photo", "video"]
"""What colabot sends: documents, photos and videos."""
_METHOD_OF: dict[SentKind, str] = {
    "document": "sendDocument",
    "photo": "sendPhoto",
    "video": "sendVideo",
}
ALBUM_MIN_ITEMS = 2
ALBUM_MAX_ITEMS = 10
# The Bot API documents 2 to 10 items. TDLib sends a one-item "album" as a plain message,
# and no error text for it exists; the emulator refuses it, in the documented words, so a
# bot that relies on it is seen (Telegram's own texts for the other refusals are TDLib's).
ALBUM_TOO_SMALL = "an album must include 2-10 items"
ALBUM_TOO_LARGE = "too many messages to send as an album"
ALBUM_EMPTY = "there are no messages to send"
_ALBUM_IDS = 13_000_000_000_000_000


class BotApiMethods:
    """Bot API methods over an :class:`EmulatorState`, recording chat changes as events."""

    def __init__(
        self,
        state: EmulatorState,
        store: FileStore,
        journal: Journal,
        *,
        bot_username: str,
        bot_first_name: str,
        mode: ServerMode | None = None,
        flood: FloodGate | None = None,
    ) -> None:
        self.state = state
        self.store = store
        self.journal = journal
        self.mode = mode or ServerMode()
        self.flood = flood if flood is not None else FloodGate()
        self.token = ""
        """The token of the request being answered (a --local server keeps files by it)."""
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self._albums = itertools.count(_ALBUM_IDS + 1)
        self.handlers: dict[str, Handler] = {
            "getme": self.get_me,
            "deletewebhook": self.delete_webhook,
            "sendmessage": self.send_message,
            "editmessagetext": self.edit_message_text,
            "senddocument": self.send_document,
            "sendphoto": self.send_photo,
            "sendvideo": self.send_video,
            "sendmediagroup": self.send_media_group,
            "answercallbackquery": self.answer_callback_query,
            "getfile": self.get_file,
            "getuserprofilephotos": self.get_user_profile_photos,
        }

    def upload_limit(self, method: str) -> int:
        """The largest file part ``method`` accepts, in bytes."""
        return PHOTO_UPLOAD_LIMIT if method == "sendphoto" else self.mode.document_upload_limit

    def bot_user(self, bot_id: int) -> JSONDict:
        """The bot as a User object, as it appears in ``from`` fields."""
        return {
            "id": bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    # Service methods

    async def get_me(self, bot: JSONDict, params: Params) -> JSONDict:
        """``getMe``."""
        return {
            **bot,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def delete_webhook(self, bot: JSONDict, params: Params) -> bool:
        """``deleteWebhook``; there is never a webhook, but pending updates can be dropped."""
        if params.flag("drop_pending_updates"):
            self.state.drop_pending_updates()
        return True

    # Sending and editing

    async def send_message(self, bot: JSONDict, params: Params) -> JSONDict:
        """``sendMessage``."""
        chat = self._chat(params)
        text, entities = self._formatted(params, "text", "entities", caption=False)
        content: JSONDict = {"text": text}
        if entities:
            content["entities"] = entities
        markup = self._inline_markup(params)
        if markup is not None:
            content["reply_markup"] = markup
        reply_to = self._reply_target(chat, params)
        content.update(self._thread(chat, params, reply_to))
        self._count_message(chat, "sendMessage")
        record = self.state.add_message(
            chat,
            bot,
            content,
            reply_to=reply_to,
            parse_mode=params.text("parse_mode"),
        )
        self._record("message", record, "sendMessage")
        return record.snapshot()

    async def edit_message_text(self, bot: JSONDict, params: Params) -> JSONDict:
        """``editMessageText``; omitting ``reply_markup`` removes the inline keyboard."""
        record = self._editable(bot, params)
        if "text" not in record.message:
            raise bad_request("there is no text in the message to edit")
        text, entities = self._formatted(params, "text", "entities", caption=False)
        markup = self._inline_markup(params)
        if (
            text == record.message["text"]
            and entities == record.message.get("entities", [])
            and markup == record.message.get("reply_markup")
        ):
            raise ApiError(400, NOT_MODIFIED_DESCRIPTION)
        self._count_message(self._chat(params), "editMessageText")
        self._apply_edit(record, {"text": text}, (), entities, "entities", markup, params)
        self._record("edit", record, "editMessageText")
        return record.snapshot()

    async def send_document(self, bot: JSONDict, params: Params) -> JSONDict:
        """``sendDocument``: a multipart upload or the file_id of a stored document."""
        return await self._send_file(bot, params, "document")

    async def send_photo(self, bot: JSONDict, params: Params) -> JSONDict:
        """``sendPhoto``: a multipart upload of an image or the file_id of a stored photo."""
        return await self._send_file(bot, params, "photo")

    async def send_video(self, bot: JSONDict, params: Params) -> JSONDict:
        """``sendVideo``: a multipart upload or the file_id of a stored video; its width,
        height and duration are the ones the sender gives (the content is never read)."""
        return await self._send_file(bot, params, "video")

    async def send_media_group(self, bot: JSONDict, params: Params) -> list[JSONDict]:
        """``sendMediaGroup``: 2 to 10 photos and videos (``media``, each item's file a part
        named by ``attach://<name>`` or a stored file's id) sent as one album: one message
        each, sharing a ``media_group_id``, each with its own caption. A refused album sends
        and keeps nothing."""
        chat = self._chat(params)
        reply_to = self._reply_target(chat, params)
        if "media" not in params.values:
            raise bad_request('parameter "media" is required')
        media = params.json("media", "media")
        if media is None or media == []:
            raise bad_request(ALBUM_EMPTY)
        if not isinstance(media, list):
            raise bad_request("can't parse media JSON object")
        if len(media) > ALBUM_MAX_ITEMS:
            raise bad_request(ALBUM_TOO_LARGE)
        if len(media) < ALBUM_MIN_ITEMS:
            raise bad_request(ALBUM_TOO_SMALL)
        items = [_album_item(raw) for raw in media]
        captions = [
            self._formatted(item, "caption", "caption_entities", caption=True) for item in items
        ]
        sources = [await self._album_source(item, params) for item in items]
        thread = self._thread(chat, params, reply_to)
        self._count_message(chat, "sendMediaGroup", len(items))
        kept: dict[Path, StoredFile] = {}
        stored = []
        for (kind, source), item in zip(sources, items, strict=True):
            if isinstance(source, StoredFile):
                stored.append(source)
                continue
            if source.path not in kept:  # the same part named twice is kept once
                kept[source.path] = await self._keep_upload(source, kind, item)
            stored.append(kept[source.path])
        group = str(next(self._albums))
        sent = []
        for (kind, _), file, (caption, entities), item in zip(
            sources, stored, captions, items, strict=True
        ):
            content: JSONDict = {kind: [file.to_api()] if kind == "photo" else file.to_api()}
            content.update(thread)
            content["media_group_id"] = group
            if caption:
                content["caption"] = caption
            if entities:
                content["caption_entities"] = entities
            record = self.state.add_message(
                chat,
                bot,
                content,
                reply_to=reply_to,
                parse_mode=item.text("parse_mode"),
                local_path=file.local_path,
            )
            self._record(kind, record, "sendMediaGroup")
            sent.append(record.snapshot())
        return sent

    async def _album_source(
        self, item: Params, params: Params
    ) -> tuple[SentKind, UploadedFile | StoredFile]:
        """An album item's kind and its file: the request's part it names (an uploaded
        photo checked as sendPhoto checks one), or the stored file of a file id."""
        kind: SentKind = "photo" if item.text("type") == "photo" else "video"
        reference = item.text("media") or ""
        if reference.startswith("attach://"):
            upload = params.files.get(reference.removeprefix("attach://"))
            if upload is None:
                raise bad_request("can't parse InputMedia: media not found")
            if upload.size == 0:
                raise bad_request("file must be non-empty")
            if kind == "photo":
                if upload.size > PHOTO_UPLOAD_LIMIT:
                    raise too_large()
                await self._photo_size(upload)
            return kind, upload
        if not reference:
            raise bad_request("can't parse InputMedia: media not found")
        return kind, self._existing_file(reference, kind)

    async def answer_callback_query(self, bot: JSONDict, params: Params) -> bool:
        """``answerCallbackQuery``; each query can be answered once."""
        query_id = params.text("callback_query_id")
        if not query_id:
            raise bad_request("callback_query_id is empty")
        query = self.state.callback_queries.get(query_id)
        if query is None or query.answered:
            raise bad_request(_QUERY_INVALID)
        if self.state.clock() - query.pressed_at > self.mode.callback_answer_window_s:
            raise bad_request(_QUERY_INVALID)
        query.answered = True
        record = self.state.get_message(query.chat_id, query.message_id)
        answer = {
            "id": query.id,
            "text": params.text("text"),
            "show_alert": params.flag("show_alert"),
            "url": params.text("url"),
        }
        self.journal.record(
            "callback_answer",
            query.chat_id,
            "answerCallbackQuery",
            record.message if record is not None else None,
            callback=answer,
        )
        return True

    async def get_file(self, bot: JSONDict, params: Params) -> JSONDict:
        """``getFile``; bots may not download files over 20 MB, except from a ``--local``
        server, which answers with the file's absolute path on its disk."""
        file_id = params.text("file_id")
        if not file_id:
            raise bad_request("file_id is empty")
        stored = self.state.files.get(file_id)
        if stored is None:
            raise bad_request("invalid file_id")
        limit = self.mode.download_limit
        if limit is not None and stored.file_size > limit:
            raise bad_request("file is too big")
        root = f"{self.mode.server_dir}/{self.token}" if self.mode.local else None
        return stored.file_info(root)

    async def get_user_profile_photos(self, bot: JSONDict, params: Params) -> JSONDict:
        """``getUserProfilePhotos``: each photo in one size."""
        user_id = params.require_int("user_id")
        if user_id not in self.state.users:
            raise bad_request("user not found")
        photos = [[stored.to_api()] for stored in self.state.profile_photos.get(user_id, [])]
        return {"total_count": len(photos), "photos": photos}

    # Commands

    # Helpers

    def _record(self, kind: EventKind, record: MessageRecord, method: str) -> None:
        self.journal.record(
            kind,
            record.chat_id,
            method,
            record.message,
            file_path=record.local_path,
            parse_mode=record.parse_mode,
        )

    def _chat(self, params: Params) -> ChatRecord:
        raw = params.text("chat_id")
        if raw is None or raw == "":
            raise bad_request("chat_id is empty")
        chat: ChatRecord | None = None
        if raw.startswith("@"):
            name = raw[1:].lower()
            chat = next(
                (
                    c
                    for c in self.state.chats.values()
                    if c.chat.get("username", "").lower() == name
                ),
                None,
            )
        else:
            try:
                chat = self.state.get_chat(int(raw))
            except ValueError:
                chat = None
        if chat is None:
            raise bad_request("chat not found")
        if chat.migrated_to is not None:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=chat.migrated_to,
            )
        if chat.bot_status in ("kicked", "left"):
            private = chat.chat["type"] == "private"
            raise ApiError(
                403,
                "Forbidden: bot was blocked by the user"
                if private
                else f"Forbidden: bot was kicked from the {chat.chat['type']} chat",
            )
        return chat

    def _count_message(self, chat: ChatRecord, method: str, count: int = 1) -> None:
        """Count ``count`` messages (edits included) against Telegram's flood limits, or
        raise the 429 it answers when they are over (see :mod:`emulator.flood`)."""
        self.flood.admit(
            chat.chat_id,
            private=chat.chat["type"] == "private",
            method=method,
            now=self.state.clock(),
            count=count,
        )

    def _thread(self, chat: ChatRecord, params: Params, reply_to: MessageRecord | None) -> JSONDict:
        """The forum topic a new message goes to: the one asked for, else the replied
        message's; the General topic when neither."""
        thread = params.integer("message_thread_id")
        if thread is None and reply_to is not None:
            thread = reply_to.message.get("message_thread_id")
        if thread is None:
            return {}
        if thread not in chat.topics:
            raise bad_request("message thread not found")
        return {"message_thread_id": thread, "is_topic_message": True}

    def _editable(self, bot: JSONDict, params: Params) -> MessageRecord:
        if params.has("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        chat = self._chat(params)
        message_id = params.integer("message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        record = self.state.get_message(chat.chat_id, message_id)
        if record is None:
            raise bad_request("message to edit not found")
        if record.message.get("from", {}).get("id") != bot["id"]:
            raise bad_request("message can't be edited")
        return record

    def _apply_edit(
        self,
        record: MessageRecord,
        changes: JSONDict,
        removed_keys: tuple[str, ...],
        entities: list[JSONDict],
        entities_key: str,
        markup: JSONDict | None,
        params: Params,
    ) -> None:
        removed = list(removed_keys)
        if entities:
            changes[entities_key] = entities
        else:
            removed.append(entities_key)
        if markup is not None:
            changes["reply_markup"] = markup
        else:
            removed.append("reply_markup")
        self.state.edit_message(
            record, changes, tuple(removed), parse_mode=params.text("parse_mode")
        )

    def _formatted(
        self,
        params: Params,
        name: str,
        entities_name: str,
        *,
        caption: bool,
        allow_empty: bool = False,
    ) -> tuple[str, list[JSONDict]]:
        raw = params.text(name) or ""
        parse_mode = params.text("parse_mode")
        try:
            if parse_mode:
                text, entities = parse_text(raw, parse_mode)
            else:
                explicit = params.json(entities_name, "entities") or []
                if not isinstance(explicit, list):
                    raise bad_request("can't parse entities JSON object")
                text, detected = parse_text(raw, None)
                entities = merge_entities(explicit, detected)
        except FormattingError as exc:
            raise bad_request(f"can't parse entities: {exc}") from None
        except ValueError:
            raise bad_request("unsupported parse_mode") from None
        if caption:
            if utf16_len(text) > MAX_CAPTION_LENGTH:
                raise bad_request("message caption is too long")
            return text, entities
        if not text.strip() and not allow_empty:
            raise bad_request("message text is empty")
        if utf16_len(text) > MAX_MESSAGE_LENGTH:
            raise bad_request("message is too long")
        return text, entities

    def _inline_markup(self, params: Params) -> JSONDict | None:
        markup = params.json("reply_markup", "reply keyboard markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            # Reply keyboards and ForceReply are accepted but never part of the message.
            return None
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request(
                "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
            )
        for row in rows:
            for button in row:
                _check_button(button)
        return {"inline_keyboard": rows} if any(rows) else None

    def _reply_target(self, chat: ChatRecord, params: Params) -> MessageRecord | None:
        reply = params.json("reply_parameters", "reply parameters")
        allow_missing = params.flag("allow_sending_without_reply")
        message_id: int | None
        if isinstance(reply, dict):
            message_id = reply.get("message_id")
            allow_missing = bool(reply.get("allow_sending_without_reply", allow_missing))
            if reply.get("chat_id") not in (None, chat.chat_id, str(chat.chat_id)):
                raise bad_request("replies to other chats are not supported here")
        elif reply is not None:
            raise bad_request("can't parse reply parameters JSON object")
        else:
            message_id = params.integer("reply_to_message_id")
        if message_id is None:
            return None
        target = self.state.get_message(chat.chat_id, int(message_id))
        if target is None and not allow_missing:
            raise bad_request("message to be replied not found")
        return target

    async def _send_file(self, bot: JSONDict, params: Params, kind: SentKind) -> JSONDict:
        chat = self._chat(params)
        reply_to = self._reply_target(chat, params)
        caption, entities = self._formatted(params, "caption", "caption_entities", caption=True)
        markup = self._inline_markup(params)
        source = params.input_file(kind)
        if source is None:
            raise bad_request(f"there is no {kind} in the request")
        if isinstance(source, str):
            stored = self._existing_file(source, kind)
        else:
            stored = await self._keep_upload(source, kind, params)
        content: JSONDict = {kind: [stored.to_api()] if kind == "photo" else stored.to_api()}
        content.update(self._thread(chat, params, reply_to))
        self._count_message(chat, _METHOD_OF[kind])
        if caption:
            content["caption"] = caption
        if entities:
            content["caption_entities"] = entities
        if markup is not None:
            content["reply_markup"] = markup
        record = self.state.add_message(
            chat,
            bot,
            content,
            reply_to=reply_to,
            parse_mode=params.text("parse_mode"),
            local_path=stored.local_path,
        )
        self._record(kind, record, _METHOD_OF[kind])
        return record.snapshot()

    def _existing_file(self, file_id: str, kind: SentKind) -> StoredFile:
        stored = self.state.files.get(file_id)
        if stored is None:
            raise bad_request(_WRONG_FILE)
        if stored.kind != kind:
            raise bad_request(f"can't use file of type {stored.kind.title()} as {kind.title()}")
        return stored

    async def _photo_size(self, upload: UploadedFile) -> tuple[int, int]:
        """A photo's width and height, as Telegram refuses what is not one it takes."""
        if upload.size == 0:
            raise bad_request("file must be non-empty")
        size = image_size(await self.store.head(upload.path))
        if size is None:
            raise bad_request("IMAGE_PROCESS_FAILED")
        width, height = size
        if (
            width == 0
            or height == 0
            or width + height > MAX_PHOTO_SIDES
            or max(width, height) > MAX_PHOTO_RATIO * min(width, height)
        ):
            raise bad_request("PHOTO_INVALID_DIMENSIONS")
        return width, height

    async def _keep_upload(
        self, upload: UploadedFile, kind: SentKind, details: Params
    ) -> StoredFile:
        """Keep an uploaded file as ``kind``; a video's width, height and duration are the
        sender's (``details``: the request, or the album item)."""
        if upload.size == 0:
            raise bad_request("file must be non-empty")
        if kind == "photo":
            width, height = await self._photo_size(upload)
            name = photo_name(upload.filename, await self.store.head(upload.path))
            local = await self.store.keep_upload(upload.path, "bot", name)
            return self.state.add_file(
                "photo", local, file_size=upload.size, width=width, height=height
            )
        filename = upload.filename or kind
        local = await self.store.keep_upload(upload.path, "bot", filename)
        mime_type = upload.content_type or guess_mime_type(filename)
        if kind == "video":
            return self.state.add_file(
                "video",
                local,
                file_size=upload.size,
                file_name=filename,
                mime_type=mime_type,
                width=details.integer("width"),
                height=details.integer("height"),
                duration=details.integer("duration"),
            )
        return self.state.add_file(
            "document", local, file_size=upload.size, file_name=filename, mime_type=mime_type
        )


def _album_item(raw: Any) -> Params:
    """One item of an album's ``media``: a photo or a video, as parameters."""
    if not isinstance(raw, dict):
        raise bad_request("can't parse InputMedia: media not found")
    kind = raw.get("type")
    if kind == "animation":
        raise bad_request(
            "can't parse InputMedia: type \"animation\" can't be used in sendMediaGroup"
        )
    if kind in ("document", "audio"):
        # Telegram takes albums of documents only or of audio files only; colabot sends
        # neither, so the emulator does not model them.
        raise bad_request(f'can\'t parse InputMedia: type "{kind}" is not emulated here')
    if kind not in ("photo", "video"):
        raise bad_request(f'can\'t parse InputMedia: type "{kind}" is unsupported')
    return Params(dict(raw), {})


def _check_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request("can't parse inline keyboard button: Text must be a String")
    actions = set(button) - {"text"}
    if not actions:
        raise bad_request("text buttons are unallowed in the inline keyboard")
    data = button.get("callback_data")
    if data is not None and (
        not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES
    ):
        raise bad_request("BUTTON_DATA_INVALID")
    url = button.get("url")
    if url is not None and (not isinstance(url, str) or not url):
        raise bad_request("BUTTON_URL_INVALID")
