"""Telegram's limits for bots, in one place: every part of the chat side that sends, cuts or
downloads uses these.

File sizes are what colabot stays under (a little under what Telegram takes, never over);
text limits are Telegram's own, in characters. The emulator (:mod:`emulator.mode`) keeps
its own model of the server's limits: it stands apart and checks colabot against them.
"""

from __future__ import annotations

from workers.safety.redaction import redact

MB = 1024 * 1024

DOCUMENT_UPLOAD_BYTES = 50_000_000
"""The largest document a bot sends (Telegram takes 50 MB)."""
PHOTO_UPLOAD_BYTES = 10_000_000
"""The largest picture a bot sends as a photo (Telegram takes 10 MB)."""
DOCUMENT_UPLOAD_MB = 50
"""Telegram's document limit as people read it."""
BOT_DOWNLOAD_MB = 20
"""The largest file a bot may download from Telegram's own server (a self-hosted server
started with ``--local`` has no limit)."""
MESSAGE_CHARS = 4096
"""The longest message text."""
CAPTION_CHARS = 1024
"""The longest caption of a photo or a document."""
CALLBACK_ANSWER_CHARS = 200
"""The longest text of an answer to a button press."""
CALLBACK_DATA_BYTES = 64
"""The most bytes of data an inline button carries."""
ALBUM_MAX_ITEMS = 10
"""Pictures or videos in one album (sendMediaGroup takes 2 to 10)."""

ELLIPSIS = "…"


def cut(text: str, limit: int) -> str:
    """``text`` made to fit ``limit`` characters, ending in "…" when it had to be cut.

    The text is redacted first: cutting a secret in two would leave a piece no redaction
    recognises (the chat's own redaction comes after this, on the whole text it gets).
    """
    text = redact(text)
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


def caption(text: str) -> str:
    """A caption Telegram takes (:data:`CAPTION_CHARS`)."""
    return cut(text, CAPTION_CHARS)


def callback_answer(text: str) -> str:
    """An answer to a button press Telegram takes (:data:`CALLBACK_ANSWER_CHARS`)."""
    return cut(text, CALLBACK_ANSWER_CHARS)


def fits_callback_data(data: str) -> bool:
    """Whether a button's data fits Telegram's :data:`CALLBACK_DATA_BYTES`."""
    return len(data.encode()) <= CALLBACK_DATA_BYTES
