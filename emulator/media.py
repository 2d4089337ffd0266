"""Small facts about files: safe local names, MIME types and image dimensions."""

from __future__ import annotations

import mimetypes
import struct


def guess_mime_type(filename: str | None, fallback: str = "application/octet-stream") -> str:
    """Return the MIME type a Telegram client would report for ``filename``."""
    guessed, _ = mimetypes.guess_type(filename or "")
    return guessed or fallback


def image_size(head: bytes) -> tuple[int, int] | None:
    """Return ``(width, height)`` of a PNG, JPEG, GIF or WebP image from its first bytes.

    ``None`` means the bytes are not an image Telegram would accept as a photo.
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
        return int(width), int(height)
    if head[:6] in {b"GIF87a", b"GIF89a"} and len(head) >= 10:
        width, height = struct.unpack("<HH", head[6:10])
        return int(width), int(height)
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(head)
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return _webp_size(head)
    return None


_FORMATS = {b"\x89PNG": "png", b"GIF8": "gif", b"\xff\xd8": "jpg", b"RIFF": "webp"}


def image_format(head: bytes) -> str | None:
    """The usual file name extension (``png``, ``jpg``, ``gif``, ``webp``) of an image, from
    its first bytes; None when they are not an image :func:`image_size` reads."""
    if image_size(head) is None:
        return None
    return next((ext for magic, ext in _FORMATS.items() if head.startswith(magic)), None)


def photo_name(filename: str | None, head: bytes) -> str:
    """The name a photo is kept under: the client's name when its extension fits the image,
    else ``photo.<ext>`` from the content (a client that sent bare bytes named the part by
    its content type, ``application.octet-stream``)."""
    ext = image_format(head)
    if ext is None:
        return filename or "photo"
    suffix = (filename or "").rsplit(".", 1)[-1].lower() if "." in (filename or "") else ""
    fits = suffix == ext or (ext == "jpg" and suffix == "jpeg")
    return filename if filename and fits else f"photo.{ext}"


_JPEG_FRAME_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in {0xD8, 0x01} or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _JPEG_FRAME_MARKERS and i + 9 <= len(data):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(width), int(height)
        i += 2 + int(length)
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None
