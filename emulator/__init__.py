"""A loopback Telegram Bot API and a terminal chat on top of it.

Used for colabot's offline mode (no token configured) and by tests that run the real
python-telegram-bot against it.
"""

from __future__ import annotations

from emulator.errors import ApiError
from emulator.events import ApiCall, BotEvent, EventKind
from emulator.flood import FloodLimits, FloodRefusal, RateReport, SentMessage, rate_report
from emulator.server import BotApiEmulator
from emulator.state import DEFAULT_USER_ID
from emulator.terminal import TerminalChat

__all__ = [
    "DEFAULT_USER_ID",
    "ApiCall",
    "ApiError",
    "BotApiEmulator",
    "BotEvent",
    "EventKind",
    "FloodLimits",
    "FloodRefusal",
    "RateReport",
    "SentMessage",
    "TerminalChat",
    "rate_report",
]
