"""Sending to Telegram: a view as a message (or a file when too long), an edit in place, where
a job's messages go, and how Telegram's refusals read.

These are the few calls the handlers and the delivery of events share; what to send, and
when, is theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError

from bot import limits, views
from bot.views import View
from workers.events import Keepalive, Notice, NoticeButton
from workers.jobs import Job

NOT_MODIFIED = "message is not modified"


def keyboard(view: View) -> InlineKeyboardMarkup | None:
    """The view's buttons as an inline keyboard (ValueError for button data Telegram would
    refuse: a bug of colabot's, better found here than as a refused message)."""
    if not view.buttons:
        return None
    for row in view.buttons:
        for button in row:
            if not limits.fits_callback_data(button.data):
                raise ValueError(f"button data {button.data!r} is over Telegram's limit")
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.label, callback_data=b.data) for b in row] for row in view.buttons]
    )


def is_not_modified(exc: BadRequest) -> bool:
    """True for Telegram's "message is not modified" refusal (an identical edit)."""
    return NOT_MODIFIED in str(exc.message).lower()


async def send_view(
    bot: Bot,
    chat_id: int,
    view: View,
    *,
    reply_to: int | None = None,
    thread_id: int | None = None,
) -> Message:
    """Send a view (in a forum topic when ``thread_id`` is given); one that is too long for a
    message goes as a text file."""
    if views.fits(view.text):
        return await bot.send_message(
            chat_id,
            view.text,
            parse_mode=ParseMode.HTML,
            reply_markup=keyboard(view),
            link_preview_options=LinkPreviewOptions(is_disabled=True),
            reply_to_message_id=reply_to,
            allow_sending_without_reply=True,
            message_thread_id=thread_id,
        )
    data = views.to_plain(view.text).encode()
    return await bot.send_document(
        chat_id,
        BytesIO(data),
        filename="reply.txt",
        caption="The reply was too long for one message, so here it is as a file.",
        reply_markup=keyboard(view),
        reply_to_message_id=reply_to,
        allow_sending_without_reply=True,
        message_thread_id=thread_id,
    )


def retry_seconds(exc: RetryAfter) -> float:
    """How long Telegram asked to wait, in seconds."""
    retry = exc.retry_after
    return float(retry.total_seconds() if hasattr(retry, "total_seconds") else retry)


def is_too_large(exc: TelegramError) -> bool:
    """Whether Telegram refused an upload for its size (HTTP 413, which python-telegram-bot
    reports as a NetworkError, the kind it retries)."""
    text = str(exc.message).lower()
    return isinstance(exc, NetworkError) and (
        "request entity too large" in text or "(413)" in text or "file too large" in text
    )


@dataclass(frozen=True)
class Place:
    """Where a message goes: a chat, and a forum topic in it (None: the General topic)."""

    chat_id: int
    thread_id: int | None = None


def job_place(job: Job) -> Place | None:
    """Where a job's messages go: the chat and topic its command came from."""
    chat = job.origin.get("chat_id")
    if chat is None:
        return None
    thread = job.origin.get("thread_id")
    return Place(int(chat), int(thread) if thread is not None else None)


class ChatPositions:
    """The newest message id seen in each chat, to tell how far up an old message has scrolled.

    Message ids in a chat grow with every message from either side.
    """

    def __init__(self) -> None:
        self._latest: dict[int, int] = {}

    def seen(self, chat_id: int, message_id: int) -> None:
        """Note a message in a chat."""
        if message_id > self._latest.get(chat_id, 0):
            self._latest[chat_id] = message_id

    def latest(self, chat_id: int) -> int:
        """The newest message id known in a chat (0 when none)."""
        return self._latest.get(chat_id, 0)


def event_buttons(view: View) -> list[list[NoticeButton]]:
    """A view's buttons as an event's."""
    return [[NoticeButton(b.label, b.data) for b in row] for row in view.buttons]


def view_buttons(buttons: list[list[NoticeButton]]) -> list[list[views.Button]]:
    """An event's buttons as a view's."""
    return [[views.Button(b.label, b.data) for b in row] for row in buttons]


def view_notice(view: View) -> Notice:
    """A view as a notice event (the inverse of :func:`notice_view`)."""
    return Notice(html=view.text, buttons=event_buttons(view))


def keepalive_event(view: View) -> Keepalive:
    """The keepalive view as its event."""
    return Keepalive(view.text, event_buttons(view))


def notice_view(job: Job | None, notice: Notice) -> View:
    """A notice as a view: plain ``text`` is escaped, ``html`` is used as it is."""
    buttons = view_buttons(notice.buttons)
    if notice.html is not None:
        return View(notice.html, buttons)
    base = views.notice_view(job, notice.text)
    return View(base.text, buttons or base.buttons)


async def edit_view(bot: Bot, chat_id: int, message_id: int, view: View) -> bool:
    """Edit a message in place; False when it is gone or can no longer be edited.

    An edit that changes nothing counts as done.
    """
    try:
        await bot.edit_message_text(
            view.text,
            chat_id=chat_id,
            message_id=message_id,
            parse_mode=ParseMode.HTML,
            reply_markup=keyboard(view),
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )
    except BadRequest as exc:
        if is_not_modified(exc):
            return True
        text = str(exc.message).lower()
        if "not found" in text or "can't be edited" in text:
            return False
        raise
    return True
