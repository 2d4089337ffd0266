"""The environment for running ``colabot run`` as its own process against the emulator.

It is the tests' own: ``colabot_env(home, emu.url, emu.token, COLABOT_...="...")`` gives this
process's environment without COLABOT_* settings, a bot for the emulator's user (``token``:
the emulator's, made at its start), data and results under ``home``, and the extra settings
(see :func:`tests.helpers.cli.colabot_env`).
"""

from __future__ import annotations

from tests.helpers.cli import colabot_env

__all__ = ["colabot_env"]
