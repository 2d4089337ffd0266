"""Helpers for the emulator's tests: the emulated bot and user, and a PNG to send."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from telegram.ext import Application

from emulator import DEFAULT_USER_ID

BOT_ID = 123
"""The bot's id: its token is ``emulator.token``, ``f"{BOT_ID}:<random>"``, new at each start."""
USER_ID = DEFAULT_USER_ID
BOT_USERNAME = "colabot_test_bot"
POLL_TIMEOUT = 10

AppStarter = Callable[..., Awaitable[Application[Any, Any, Any, Any, Any, Any]]]


def png_bytes(width: int, height: int) -> bytes:
    """A valid grey PNG of the given size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


CLIP = b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 2000
"""Bytes standing for an MP4 clip: the server keeps a video as sent and never reads it."""
