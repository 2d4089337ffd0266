"""Builds the python-telegram-bot Application for a Bot API server."""

from __future__ import annotations

import os
from typing import Any

from telegram.ext import AIORateLimiter, Application, ApplicationBuilder

TELEGRAM_API = "https://api.telegram.org"

# Durations from PTB (RetryAfter.retry_after) are timedeltas, as in its next major version.
os.environ.setdefault("PTB_TIMEDELTA", "1")


def bot_api_urls(api_url: str) -> tuple[str, str]:
    """(base_url, base_file_url) for PTB from a server's base URL ('' = Telegram's own)."""
    root = (api_url or TELEGRAM_API).rstrip("/")
    return f"{root}/bot", f"{root}/file/bot"


def build_application(
    token: str, api_url: str, *, media_timeout_s: float = 120.0
) -> Application[Any, Any, Any, Any, Any, Any]:
    """An Application with the rate limiter, the job queue and generous upload timeouts.

    Updates are processed concurrently so that a slow download never holds up a /status.
    """
    base_url, base_file_url = bot_api_urls(api_url)
    return (
        ApplicationBuilder()
        .token(token)
        .base_url(base_url)
        .base_file_url(base_file_url)
        .rate_limiter(AIORateLimiter(max_retries=2))
        .concurrent_updates(8)
        .media_write_timeout(media_timeout_s)
        .read_timeout(15.0)
        .write_timeout(30.0)
        .connect_timeout(10.0)
        .get_updates_read_timeout(40.0)
        .build()
    )
