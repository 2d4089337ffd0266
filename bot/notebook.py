"""Notebook mode: run colabot inside an already-running event loop (Jupyter, Colab).

    from bot import notebook
    await notebook.start()        # or notebook.start(config) / notebook.start("colabot.toml")
    ...
    await notebook.stop()

Starting again stops the earlier instance first, so re-running a cell never leaves two
pollers on one token (Telegram's "Conflict: terminated by other getUpdates request").
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from bot.config import Config, find_config_file, load_config
from bot.errors import ConfigError
from bot.logs import setup_logging
from bot.service import Colabot

_current: Colabot | None = None
_watcher: asyncio.Task[None] | None = None
log = logging.getLogger(__name__)


def _resolve(config: Config | str | Path | None) -> Config:
    if isinstance(config, Config):
        return config
    path = Path(config) if config is not None else None
    return load_config(find_config_file(path, os.environ))


async def start(config: Config | str | Path | None = None) -> Colabot:
    """Start the bot, engine and heartbeat in the running loop and return at once."""
    global _current
    resolved = _resolve(config)
    if resolved.offline:
        raise ConfigError(
            "telegram.token",
            "notebook mode needs a bot token (set COLABOT_TELEGRAM_TOKEN, e.g. from a Colab "
            "secret); the offline chat is for `colabot run` in a terminal",
        )
    await stop()
    setup_logging()
    colabot = Colabot(resolved)
    await colabot.start()
    _current = colabot
    global _watcher
    _watcher = asyncio.create_task(_stop_on_failure(colabot), name="colabot-notebook-watch")
    return colabot


async def _stop_on_failure(colabot: Colabot) -> None:
    """In a notebook nobody waits for colabot: when it must stop (another process polls with
    its token), say why in the log and stop it."""
    await colabot.failed.wait()
    log.error("colabot stopped: %s", colabot.fatal)
    if _current is colabot:
        await stop()


async def stop() -> None:
    """Stop the running instance, if any (running jobs become interrupted and resumable)."""
    global _current, _watcher
    colabot, _current = _current, None
    watcher, _watcher = _watcher, None
    if watcher is not None and watcher is not asyncio.current_task():
        watcher.cancel()
    if colabot is not None:
        await colabot.stop()


def current() -> Colabot | None:
    """The running instance, if any."""
    return _current
