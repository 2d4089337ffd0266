"""The environment for running ``colabot run`` as its own process against the emulator."""

from __future__ import annotations

import os
from pathlib import Path

from emulator import DEFAULT_USER_ID


def colabot_env(home: Path, api_url: str, token: str, **settings: str) -> dict[str, str]:
    """This process's environment without COLABOT_* settings, plus a bot for the emulator's
    user (``token``: the emulator's, made at its start), data and results under ``home``,
    and any extra ``COLABOT_*`` ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLABOT_")}
    env.update(
        HOME=str(home),
        COLABOT_TELEGRAM_TOKEN=token,
        COLABOT_TELEGRAM_API_URL=api_url,
        COLABOT_TELEGRAM_ALLOWED_USERS=str(DEFAULT_USER_ID),
        COLABOT_WORKER_DATA_DIR=str(home / "data"),
        COLABOT_RESULTS_DIR=str(home / "results"),
    )
    env.update(settings)
    return env
