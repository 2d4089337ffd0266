"""The gate every update passes first: Telegram's own notes about chats, handled quietly, and
the access guard that lets only allowed users in allowed chats reach a command or a button.
Both fail closed: whatever goes wrong, the update stops there."""

from __future__ import annotations

import logging
import time

from telegram import Update
from telegram.ext import ApplicationHandlerStop, ContextTypes, filters

from bot import limits, views
from bot.access import Verdict
from bot.chats import ChatBook
from bot.sending import ChatPositions
from workers.errors import ColabotError

log = logging.getLogger(__name__)

REFUSAL_COOLDOWN_S = 600.0
"""A stranger hears the refusal once in this long."""


class Gate:
    """The service-update handler and the access guard, bound to the chats colabot keeps."""

    def __init__(self, chats: ChatBook, positions: ChatPositions) -> None:
        self.chats = chats
        self.positions = positions
        self._refused: dict[int, float] = {}

    # service updates ----------------------------------------------------------------------------

    async def on_service_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Telegram's own notes about chats, handled quietly and never answered: the bot was
        removed or blocked, a group became a supergroup, members came or went.

        They pass their own access guard before anything is written: only a note about a
        chat colabot serves changes what it keeps (whoever caused it: Telegram vouches for
        the note); a stranger's chat writes nothing. Fails closed: whatever goes wrong, the
        update stops here, unanswered.
        """
        if not _is_service_update(update):
            return
        try:
            chat_id, chat_type = _service_chat(update)
            if self.chats.serves(chat_id, chat_type):
                self._apply_service_update(update)
            else:
                # Only the id: nothing a stranger's chat carries is logged.
                log.info("ignored a service update about chat %s (not served)", chat_id)
        except Exception:
            log.exception("handling a service update failed; it stops here")
        raise ApplicationHandlerStop

    def _apply_service_update(self, update: Update) -> None:
        """What a note about a served chat changes: a chat that removed or blocked the bot
        is forgotten, a group that became a supergroup is followed."""
        member = update.my_chat_member
        if member is not None:
            if member.new_chat_member.status in ("kicked", "left"):
                self.chats.forget(member.chat.id, "the bot was removed from it or blocked")
            return
        message = update.message
        if message is None:
            return
        if message.migrate_to_chat_id:
            self.chats.migrate(message.chat.id, message.migrate_to_chat_id)
        elif message.migrate_from_chat_id:
            self.chats.migrate(message.migrate_from_chat_id, message.chat.id)

    # access -------------------------------------------------------------------------------------

    async def guard(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Let allowed users in allowed chats through; answer anyone else once, and stop.

        Fails closed: whatever goes wrong while deciding or refusing, the update stops here.
        """
        try:
            verdict = self._verdict(update)
        except Exception:
            log.exception("the access guard failed; refusing the update")
            verdict = Verdict.STRANGER
        if verdict is Verdict.ALLOW:
            self._note_allowed(update)
            return
        try:
            await self._refuse(update, verdict)
        except Exception as exc:
            log.info("could not send the refusal: %s", type(exc).__name__)
        finally:
            # Whatever happened above, nothing may pass a refused update.
            raise ApplicationHandlerStop

    def _verdict(self, update: Update) -> Verdict:
        user = update.effective_user
        chat = update.effective_chat
        return self.chats.verdict(
            user.id if user is not None else None,
            chat.id if chat is not None else None,
            chat.type if chat is not None else None,
        )

    def _note_allowed(self, update: Update) -> None:
        chat, message = update.effective_chat, update.effective_message
        if chat is None:
            return
        try:
            self.chats.met(chat.id)
        except ColabotError as exc:
            log.warning("could not remember chat %s: %s", chat.id, exc)
        if message is not None:
            self.positions.seen(chat.id, message.message_id)

    async def _refuse(self, update: Update, verdict: Verdict) -> None:
        user = update.effective_user
        user_id = user.id if user is not None else None
        # Only the id: nothing a stranger sends (text, names, files) is ever logged.
        log.warning("refused an update from user %s (%s)", user_id, verdict.value)
        chat = update.effective_chat
        text = views.REFUSAL
        if verdict is Verdict.CHAT_NOT_ALLOWED and chat is not None:
            text = views.chat_not_allowed(chat.id)
        if update.callback_query is not None:
            # Only the presser sees it, and an unanswered button keeps spinning: always answer.
            await update.callback_query.answer(limits.callback_answer(text))
            return
        now = time.monotonic()
        if user_id is None or now - self._refused.get(user_id, -1e9) <= REFUSAL_COOLDOWN_S:
            return
        self._refused[user_id] = now
        if update.effective_message is not None:
            await update.effective_message.reply_text(text)


def _is_service_update(update: Update) -> bool:
    """Whether an update is one of Telegram's notes about a chat rather than something a
    person sent: membership changes (the bot's own and others'), join requests, and service
    messages (members came or left, a migration, a new title...)."""
    if update.my_chat_member or update.chat_member or update.chat_join_request:
        return True
    message = update.message
    if message is None or message.text is not None:
        # A service message never has text: a typed command is not one (and skips the
        # twenty-odd checks below, a tenth of a millisecond of every answer).
        return False
    return bool(filters.StatusUpdate.ALL.check_update(update))


def _service_chat(update: Update) -> tuple[int | None, str | None]:
    """The chat a service update is about, and its type. The note that arrives in the new
    supergroup after a migration is about the group it came from."""
    message = update.message
    if message is not None and message.migrate_from_chat_id:
        return message.migrate_from_chat_id, "group"
    chat = update.effective_chat
    return (chat.id, chat.type) if chat is not None else (None, None)
