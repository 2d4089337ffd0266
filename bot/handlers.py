"""Thin async handlers: check the user, parse, call the engine, reply with a view.

Every failure a user can cause becomes a clear message; anything unexpected is logged and
answered with one line, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telegram import Document, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import views
from bot.access import Verdict
from bot.commands import (
    USAGE,
    CancelDeclined,
    CancelRequest,
    HelpRequest,
    JobsRequest,
    LogsRequest,
    ReleaseRequest,
    Request,
    ResultsRequest,
    ResumeRequest,
    RuntimeRequest,
    StatusRequest,
    SubmitRequest,
    command_name,
    kind_usage,
    parse_button,
    parse_command,
)
from bot.config import Config, access_policy
from bot.delivery import ChatPositions, send_view
from bot.errors import UploadError, UsageError
from bot.runtime import RuntimeClock, read_facts
from workers.engine import Engine
from workers.errors import ColabotError, JobStateError, SpecError, StoreError
from workers.jobs import Action, JobSpec, JobState

log = logging.getLogger(__name__)

REFUSAL_COOLDOWN_S = 600.0
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
INTERNAL_ERROR = "Something went wrong while handling that; the details are in colabot's log."

ReleaseHandler = Callable[[bool, int], Awaitable[str]]


def safe_filename(name: str | None) -> str:
    """A document's name reduced to a harmless base name."""
    base = Path(name or "upload.bin").name
    cleaned = SAFE_NAME.sub("_", base).strip("._") or "upload.bin"
    return cleaned[:120]


def too_large_message(name: str, size_mb: float, limit_mb: int) -> str:
    """Why a sent file cannot be used, and what to do instead."""
    return (
        f"{name} is {size_mb:.1f} MB, but bots can only download files up to {limit_mb} MB "
        "from Telegram. Instead: put it on this machine and give its path (inside the allowed "
        "folders), share it from Google Drive and give the link, or give an http(s) URL."
    )


@dataclass
class Reply:
    """Where a handler answers: the chat and the message to reply to."""

    chat_id: int
    message_id: int | None


class ChatHandlers:
    """The bot's handlers, bound to one engine and configuration."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        clock: RuntimeClock,
        *,
        on_submit: Callable[[int], None] | None = None,
        on_release: ReleaseHandler | None = None,
        positions: ChatPositions | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.registry = engine.registry
        self.clock = clock
        self.policy = access_policy(config)
        self.staging = config.data_dir / "staging"
        self.on_submit = on_submit
        self.on_release = on_release
        self.positions = positions or ChatPositions()
        self._refused: dict[int, float] = {}
        self._edits_answered: set[tuple[int, int]] = set()

    def register(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """Attach the handlers: the access guard first, then commands, buttons, the rest."""
        app.add_handler(TypeHandler(Update, self.guard), group=-1)
        app.add_handler(MessageHandler(filters.UpdateType.EDITED, self.on_edit))
        app.add_handler(MessageHandler(filters.COMMAND, self.on_command))
        app.add_handler(
            MessageHandler(filters.Document.ALL & filters.CaptionRegex(r"^/"), self.on_command)
        )
        app.add_handler(CallbackQueryHandler(self.on_button))
        app.add_handler(MessageHandler(filters.Document.ALL, self.on_stray_document))
        app.add_handler(MessageHandler(filters.ALL, self.on_other))
        app.add_error_handler(self.on_error)

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
        return self.policy.verdict(
            user.id if user is not None else None,
            chat.id if chat is not None else None,
            chat.type if chat is not None else None,
        )

    def _note_allowed(self, update: Update) -> None:
        chat, message = update.effective_chat, update.effective_message
        if chat is None:
            return
        try:
            self._remember_chat(chat.id)
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
            await update.callback_query.answer(text[:200])
            return
        now = time.monotonic()
        if user_id is None or now - self._refused.get(user_id, -1e9) <= REFUSAL_COOLDOWN_S:
            return
        self._refused[user_id] = now
        if update.effective_message is not None:
            await update.effective_message.reply_text(text)

    def _remember_chat(self, chat_id: int) -> None:
        chats = self.engine.store.kv_get("chats") or []
        if chat_id not in chats:
            self.engine.store.kv_set("chats", [*chats, chat_id][-20:])

    # entry points -------------------------------------------------------------------------------

    async def on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A command, typed or as a document's caption (possibly replying to a document)."""
        message = update.effective_message
        if message is None:
            return
        text = message.text or message.caption or ""
        document = message.document or (
            message.reply_to_message.document if message.reply_to_message else None
        )
        reply = Reply(message.chat_id, message.message_id)
        try:
            request = parse_command(
                text,
                self.registry,
                has_document=document is not None and command_name(text) in ("train", "infer"),
            )
            await self.dispatch(request, reply, update, document)
        except Exception as exc:
            await self._report(exc, reply, context, text)

    async def on_edit(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """An edited message: edits are not commands, so say once that nothing is re-run."""
        message = update.edited_message
        if message is None or not (message.text or message.caption or "").startswith("/"):
            return
        key = (message.chat_id, message.message_id)
        if key in self._edits_answered:
            return
        self._edits_answered.add(key)
        await message.reply_text(views.EDIT_NOT_RUN, do_quote=True)

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """An inline button press."""
        query = update.callback_query
        if query is None or query.message is None:
            return
        reply = Reply(query.message.chat.id, None)
        try:
            request = parse_button(query.data or "")
        except UsageError as exc:
            await query.answer(exc.problem)
            return
        try:
            note = await self.dispatch(request, reply, update, None)
            await query.answer(note or None)
        except Exception as exc:
            await query.answer()
            await self._report(exc, reply, context, query.data or "")

    async def on_stray_document(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A document without a command: explain how to use it."""
        message = update.effective_message
        if message is None or message.document is None:
            return
        name = views.esc(message.document.file_name or "the file")
        await message.reply_html(
            f"Got {name}. To use it as a job input, reply to it with a command such as "
            f"<code>/train &lt;kind&gt;</code>, or send it again with the command as its caption.",
            do_quote=True,
        )

    async def on_other(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Plain text and anything else."""
        message = update.effective_message
        if message is not None:
            await message.reply_text("I only understand commands. /help lists them.", do_quote=True)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Last resort: log the error (redacted by the log filter), tell the user briefly."""
        log.error("error while handling an update", exc_info=context.error)
        if isinstance(update, Update) and update.effective_chat is not None:
            with contextlib.suppress(TelegramError):
                await context.bot.send_message(update.effective_chat.id, INTERNAL_ERROR)

    async def _report(
        self, exc: Exception, reply: Reply, context: ContextTypes.DEFAULT_TYPE, text: str
    ) -> None:
        if isinstance(exc, UsageError):
            view = views.usage_view(exc.problem, exc.usage)
        elif isinstance(exc, SpecError):
            view = views.usage_view(str(exc), self._usage_for(text))
        elif isinstance(exc, StoreError):
            view = views.error_view(exc.reason)
        elif isinstance(exc, ColabotError):
            view = views.error_view(str(exc))
        else:
            log.error("error while handling a command", exc_info=exc)
            view = views.error_view(INTERNAL_ERROR)
        await send_view(context.bot, reply.chat_id, view, reply_to=reply.message_id)

    def _usage_for(self, text: str) -> str:
        name = command_name(text)
        if name in ("train", "infer"):
            parts = text.split()
            if len(parts) > 1 and parts[1].lower() in self.registry.names():
                kind = self.registry.get(parts[1].lower())
                action = Action(name)
                if action in kind.actions:
                    return kind_usage(action, kind.name, kind.inputs(action), kind.params(action))
        return USAGE.get(name, USAGE["help"])

    # dispatch -----------------------------------------------------------------------------------

    async def dispatch(
        self, request: Request, reply: Reply, update: Update, document: Document | None
    ) -> str:
        """Carry out one request; return a short note for a button's answer."""
        bot = update.get_bot()
        if isinstance(request, HelpRequest):
            view = views.help_view(request.topic, self.registry, welcome=request.welcome)
            await send_view(bot, reply.chat_id, view, reply_to=reply.message_id)
        elif isinstance(request, SubmitRequest):
            await self._submit(request, reply, update, document)
        elif isinstance(request, JobsRequest):
            view = views.jobs_view(self.engine.jobs(request.limit))
            await send_view(bot, reply.chat_id, view, reply_to=reply.message_id)
        elif isinstance(request, StatusRequest):
            job = self.engine.job(request.job_id)
            tail = await asyncio.to_thread(self.engine.log_tail, job.id, 8)
            view = views.status_view(job, self.engine.current_step(job.id), tail)
            await send_view(bot, reply.chat_id, view, reply_to=reply.message_id)
        elif isinstance(request, LogsRequest):
            await self._logs(request, reply, update)
        elif isinstance(request, CancelRequest):
            return await self._cancel(request, reply, update)
        elif isinstance(request, CancelDeclined):
            await self._edit_button_message(update, f"Kept job #{request.job_id} running.")
            return "kept"
        elif isinstance(request, ResultsRequest):
            view = views.results_view(self.engine.job(request.job_id))
            await send_view(bot, reply.chat_id, view, reply_to=reply.message_id)
        elif isinstance(request, ResumeRequest):
            job = await self.resume(request.job_id)
            return f"resuming #{job.id}"
        elif isinstance(request, RuntimeRequest):
            facts = await asyncio.to_thread(read_facts, self.config.data_dir)
            view = views.runtime_view(facts, self.clock)
            await send_view(bot, reply.chat_id, view, reply_to=reply.message_id)
        elif isinstance(request, ReleaseRequest):
            if self.on_release is None:
                return "nothing to release"
            note = await self.on_release(request.confirmed, reply.chat_id)
            await self._edit_button_message(update, note)
            return note
        return ""

    async def resume(self, job_id: int) -> Any:
        """Queue a job again (overridden by the lifecycle layer to restore lost files)."""
        return self.engine.resume(job_id)

    async def _edit_button_message(self, update: Update, text: str) -> None:
        query = update.callback_query
        if query is None:
            return
        try:
            await query.edit_message_text(views.esc(text), parse_mode="HTML")
        except BadRequest as exc:
            log.debug("could not edit the button message: %s", exc)

    async def _submit(
        self, request: SubmitRequest, reply: Reply, update: Update, document: Document | None
    ) -> None:
        spec = JobSpec(request.kind, request.action, dict(request.inputs), dict(request.params))
        names: dict[str, str] = {}
        if request.document_slot is not None and document is not None:
            names[request.document_slot] = safe_filename(document.file_name)
        # Refuse a bad request, the attached file included, before anything is downloaded.
        self.engine.check(spec, names)
        self.engine.disk.check_room()
        uploads: dict[str, Path] = {}
        if request.document_slot is not None and document is not None:
            uploads[request.document_slot] = await self._download(
                document, names[request.document_slot]
            )
        origin = {
            "chat_id": reply.chat_id,
            "message_id": reply.message_id,
            "user_id": update.effective_user.id if update.effective_user else None,
        }
        try:
            job = self.engine.submit(spec, origin, uploads=uploads)
        finally:
            for path in uploads.values():
                if path.exists():
                    path.unlink()
        if self.on_submit is not None:
            self.on_submit(job.id)

    async def _download(self, document: Document, name: str) -> Path:
        limit_mb = self.config.telegram.max_download_mb
        size = document.file_size or 0
        if size > limit_mb * 1024 * 1024:
            raise UploadError(name, too_large_message(name, size / 1024**2, limit_mb))
        target = self.staging / secrets.token_hex(8) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            telegram_file = await document.get_file()
            await telegram_file.download_to_drive(target)
        except BadRequest as exc:
            if "too big" in str(exc.message).lower():
                raise UploadError(name, too_large_message(name, size / 1024**2, 20)) from None
            raise UploadError(name, f"Telegram refused the download: {exc.message}") from None
        except TelegramError as exc:
            raise UploadError(name, f"the download failed ({exc}); please send it again") from None
        if size and target.stat().st_size != size:
            raise UploadError(name, "the download was incomplete; please send it again")
        return target

    async def _logs(self, request: LogsRequest, reply: Reply, update: Update) -> None:
        lines = await asyncio.to_thread(self.engine.log_tail, request.job_id, request.lines)
        bot = update.get_bot()
        if not lines:
            view = views.View(f"Job #{request.job_id} has no log lines yet.")
            await send_view(bot, reply.chat_id, view, reply_to=reply.message_id)
            return
        text = f"Last {len(lines)} lines of job #{request.job_id}:\n" + views.pre(lines)
        if views.fits(text):
            await send_view(bot, reply.chat_id, views.View(text), reply_to=reply.message_id)
            return
        data = ("\n".join(lines) + "\n").encode()
        await bot.send_document(
            reply.chat_id,
            data,
            filename=f"job-{request.job_id}-log.txt",
            caption=f"Last {len(lines)} lines of job #{request.job_id}",
            reply_to_message_id=reply.message_id,
            allow_sending_without_reply=True,
        )

    async def _cancel(self, request: CancelRequest, reply: Reply, update: Update) -> str:
        job = self.engine.job(request.job_id)
        if job.state not in (JobState.QUEUED, JobState.RUNNING, JobState.INTERRUPTED):
            raise JobStateError(job.id, job.state.value, "cancel")
        if not request.confirmed:
            await send_view(
                update.get_bot(),
                reply.chat_id,
                views.cancel_question(job),
                reply_to=reply.message_id,
            )
            return "confirm below"
        await self._edit_button_message(update, f"Cancelling job #{job.id}…")
        await self.engine.cancel(job.id)
        return f"cancelled #{job.id}"
