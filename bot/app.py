"""Builds the python-telegram-bot Application for a Bot API server."""

from __future__ import annotations

import os
from collections.abc import Awaitable
from typing import Any

from telegram.ext import Application, ApplicationBuilder, ExtBot, SimpleUpdateProcessor
from telegram.request import HTTPXRequest

from bot.ratelimit import ChatRateLimiter
from workers.safety.redaction import redact
from workers.waits import Foreground

CONCURRENT_UPDATES = 8
"""Updates processed at once, so that a slow download never holds up a /status."""

TELEGRAM_API = "https://api.telegram.org"
# Parameters that carry text a person reads; every one goes through the redaction.
TEXT_PARAMETERS = ("text", "caption", "message_text")

# Durations from PTB (RetryAfter.retry_after) are timedeltas, as in its next major version.
os.environ.setdefault("PTB_TIMEDELTA", "1")


def bot_api_urls(api_url: str) -> tuple[str, str]:
    """(base_url, base_file_url) for PTB from a server's base URL ('' = Telegram's own)."""
    root = (api_url or TELEGRAM_API).rstrip("/")
    return f"{root}/bot", f"{root}/file/bot"


class RedactingBot(ExtBot[Any]):
    """The bot whose every outgoing text is redacted first: nothing a secret could hide in
    (a log tail, an error message, a file name) leaves for the chat unmasked."""

    async def _do_post(self, endpoint: str, data: dict[str, Any], **kwargs: Any) -> Any:
        for name in TEXT_PARAMETERS:
            value = data.get(name)
            if isinstance(value, str):
                data[name] = redact(value)
        return await super()._do_post(endpoint, data, **kwargs)


class ForegroundUpdates(SimpleUpdateProcessor):
    """Processes updates concurrently, each as foreground work: while a command or a button
    is being answered, the jobs' output steps aside (:class:`~workers.waits.Foreground`)."""

    def __init__(self, max_concurrent_updates: int, foreground: Foreground) -> None:
        super().__init__(max_concurrent_updates)
        self.foreground = foreground

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Process the update with the foreground held."""
        with self.foreground.held():
            await coroutine


def build_application(
    token: str,
    api_url: str,
    *,
    media_timeout_s: float = 120.0,
    foreground: Foreground | None = None,
) -> Application[Any, Any, Any, Any, Any, Any]:
    """An Application with the rate limiter, the job queue and generous upload timeouts.

    Updates are processed concurrently, as ``foreground`` work (shared with the engine, so
    that its jobs' output lets the chat go first).
    """
    base_url, base_file_url = bot_api_urls(api_url)
    bot = RedactingBot(
        token,
        base_url=base_url,
        base_file_url=base_file_url,
        request=HTTPXRequest(
            connection_pool_size=256,
            read_timeout=15.0,
            write_timeout=30.0,
            connect_timeout=10.0,
            media_write_timeout=media_timeout_s,
        ),
        get_updates_request=HTTPXRequest(
            connection_pool_size=1, read_timeout=40.0, write_timeout=30.0, connect_timeout=10.0
        ),
        rate_limiter=ChatRateLimiter(),
    )
    updates = ForegroundUpdates(CONCURRENT_UPDATES, foreground or Foreground())
    return ApplicationBuilder().bot(bot).concurrent_updates(updates).build()
