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

MESSAGES_PER_SECOND = 30
"""Messages (edits included) a bot may send per second in all."""
GROUP_MESSAGES_PER_MINUTE = 20
"""Messages a bot may send per minute in one group."""
PRIVATE_MESSAGES_PER_SECOND = 1.0
"""Messages a bot may send per second in one private chat, on average."""
PRIVATE_BURST = 20
"""How many messages colabot sends at once in a private chat before it keeps to
:data:`PRIVATE_MESSAGES_PER_SECOND` (Telegram lets short bursts pass)."""
PRIVATE_START_BURST = 10
"""How many of :data:`PRIVATE_BURST` a private chat has when colabot starts: a colabot that
was killed may have spent the chat's burst at Telegram just before, and nothing tells the
next one. It is kept under Telegram's burst less colabot's own (the emulator's model: 30 less
20), so that even then a start is not refused."""
WINDOW_MARGIN_S = 0.5
"""How much longer than Telegram's windows (one second in all, a minute in a group) colabot
counts its messages: a message takes a varying time to reach Telegram, so two that leave a
window apart may arrive less than a window apart."""

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
