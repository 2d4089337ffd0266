"""A bare python-telegram-bot echo bot: the yardstick colabot's chat latency is measured
against. python-telegram-bot's own ``AIORateLimiter`` (with colabot's two retries after a
429; colabot has :class:`bot.ratelimit.ChatRateLimiter`, which keeps Telegram's limits as
Telegram counts them), the same HTTP settings as colabot's application, and nothing else:
each message is answered with its own text, as a reply.

    python -m bench.echo_bot --api-url http://127.0.0.1:PORT --token 123456:TOKEN
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from telegram import Update
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ContextTypes, filters
from telegram.ext import MessageHandler as _MessageHandler
from telegram.request import HTTPXRequest

from bot.app import bot_api_urls


async def echo(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer a message with its own text."""
    message = update.effective_message
    if message is not None and message.text:
        await message.reply_text(message.text, do_quote=True)


def build(token: str, api_url: str) -> Application[Any, Any, Any, Any, Any, Any]:
    """The echo bot's application, built as colabot builds its own."""
    base_url, base_file_url = bot_api_urls(api_url)
    return (
        ApplicationBuilder()
        .token(token)
        .base_url(base_url)
        .base_file_url(base_file_url)
        .request(HTTPXRequest(connection_pool_size=256, read_timeout=15.0))
        .get_updates_request(HTTPXRequest(connection_pool_size=1, read_timeout=40.0))
        .rate_limiter(AIORateLimiter(max_retries=2))
        .concurrent_updates(8)
        .build()
    )


def start(api_url: str, token: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The echo bot as a process of its own on the Bot API server at ``api_url``, quiet."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench.echo_bot", "--api-url", api_url, "--token", token],
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    """Run the echo bot until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    app = build(args.token, args.api_url)
    app.add_handler(_MessageHandler(filters.TEXT, echo))
    app.run_polling(drop_pending_updates=False, close_loop=False)


if __name__ == "__main__":
    main()
