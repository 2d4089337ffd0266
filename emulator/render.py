"""Pure functions that turn chat messages and bot events into terminal text."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from emulator.state import inline_buttons

if TYPE_CHECKING:
    from pathlib import Path

    from emulator.events import BotEvent

INDENT = "    "

HELP_TEXT = """\
Type a message and press Enter to send it to the bot. Terminal commands:
  /upload PATH [caption]   send a local file as a document (the caption may be a command,
                           e.g. /upload ~/data.zip /train selftest; quote paths with spaces)
  /reply N text            send text as a reply to message #N
  bK                       press button K of the newest message that has buttons
  bK.N                     press button K of message #N
  :say text                send text exactly as typed (e.g. a line starting with "/upload")
  :help                    show this help
  :quit                    leave (so does end of input, Ctrl-D)"""


def format_size(size: int) -> str:
    """Return a byte count the way people read it: ``512 B``, ``1.2 KB``, ``25.0 MB``."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def message_body(message: dict[str, Any]) -> str:
    """Return a message's text or caption (empty if it has neither)."""
    value = message.get("text", message.get("caption", ""))
    return value if isinstance(value, str) else ""


def button_lines(message: dict[str, Any]) -> list[str]:
    """Return the inline keyboard as ``[b1 Status] [b2 Logs]`` lines, one per row."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    lines: list[str] = []
    number = 0
    for row in rows:
        labels = []
        for button in row:
            number += 1
            label = f"b{number} {button.get('text', '')}"
            if "url" in button:
                label += f" -> {button['url']}"
            labels.append(f"[{label}]")
        if labels:
            lines.append(" ".join(labels))
    return lines


def attachment_line(message: dict[str, Any], file_path: Path | None) -> str | None:
    """Describe a document, photo or video (and the album it is part of), with where its
    file was saved when known."""
    saved = f" saved at {file_path}" if file_path is not None else ""
    album = " (album)" if message.get("media_group_id") else ""
    document = message.get("document")
    if isinstance(document, dict):
        name = document.get("file_name") or "document"
        size = format_size(int(document.get("file_size") or 0))
        return f"[document] {name} ({size}){saved}"
    photos = message.get("photo")
    if isinstance(photos, list) and photos:
        largest = photos[-1]
        size = format_size(int(largest.get("file_size") or 0))
        shape = f"{largest.get('width')}x{largest.get('height')}"
        return f"[photo {shape}]{album} ({size}){saved}"
    video = message.get("video")
    if isinstance(video, dict):
        name = video.get("file_name") or "video"
        size = format_size(int(video.get("file_size") or 0))
        shape = f"{video.get('width')}x{video.get('height')}, {video.get('duration')} s"
        return f"[video {shape}]{album} {name} ({size}){saved}"
    return None


def render_message(
    message: dict[str, Any],
    *,
    who: str,
    file_path: Path | None = None,
    edited: bool = False,
) -> str:
    """Render a whole message: ``#12 bot: text``, attachment, buttons, indented below."""
    header = f"#{message.get('message_id')} {who}"
    replied = message.get("reply_to_message")
    if isinstance(replied, dict):
        header += f" (reply to #{replied.get('message_id')})"
    if edited:
        header += " (edited)"
    lines: list[str] = []
    attachment = attachment_line(message, file_path)
    if attachment is not None:
        lines.append(attachment)
    lines.extend(message_body(message).splitlines())
    lines.extend(button_lines(message))
    return _with_header(f"{header}:", lines)


def render_edit(message: dict[str, Any], file_path: Path | None = None) -> str:
    """Render an edit as a new line that says which message changed: ``~ #12 (edited): ...``."""
    lines: list[str] = []
    attachment = attachment_line(message, file_path)
    if attachment is not None:
        lines.append(attachment)
    lines.extend(message_body(message).splitlines())
    lines.extend(button_lines(message) or (["(no buttons)"] if not lines else []))
    return _with_header(f"~ #{message.get('message_id')} (edited):", lines)


def render_delete(message: dict[str, Any]) -> str:
    """Render a deletion."""
    return f"- #{message.get('message_id')} (deleted)"


def render_callback_answer(callback: dict[str, Any]) -> str:
    """Render the bot's answer to a button press as a short note."""
    text = callback.get("text")
    if callback.get("show_alert") and text:
        return f"! alert from bot: {text}"
    if callback.get("url"):
        return f"(bot answered with a link: {callback['url']})"
    return f"(bot: {text})" if text else "(bot acknowledged the button)"


def render_event(event: BotEvent, *, own_chat: int) -> str:
    """Render one bot event; events in other chats are marked with their chat id."""
    message = event.message or {}
    if event.kind == "callback_answer":
        text = render_callback_answer(event.callback or {})
    elif event.kind == "delete":
        text = render_delete(message)
    elif event.kind == "edit":
        text = render_edit(message, event.file_path)
    else:
        text = render_message(message, who="bot", file_path=event.file_path)
    return text if event.chat_id == own_chat else f"[chat {event.chat_id}] {text}"


def render_press(number: int, button: dict[str, Any], message_id: int) -> str:
    """Render the person's button press."""
    return f"> pressed [b{number} {button.get('text', '')}] on #{message_id}"


def render_link(number: int, button: dict[str, Any]) -> str:
    """Render a URL button, which opens a link instead of talking to the bot."""
    return f"b{number} opens {button.get('url')}"


def render_error(text: str) -> str:
    """Render a problem with what the person typed."""
    return f"! {text}"


def render_banner(bot_name: str) -> str:
    """The first lines of an offline chat."""
    return f"Offline chat with {bot_name}. Type :help for terminal commands, :quit to leave."


def describe_buttons(message: dict[str, Any]) -> str:
    """Return ``b1..bN`` for error messages about a message's buttons."""
    count = len(inline_buttons(message))
    return f"b1..b{count}" if count else "no buttons"


def terminal_rows(text: str, columns: int) -> int:
    """Return how many terminal rows ``text`` takes at a width of ``columns``."""
    width = max(columns, 1)
    return sum(max(1, math.ceil(len(line) / width)) for line in text.split("\n"))


def _with_header(header: str, lines: list[str]) -> str:
    if not lines:
        return header
    first, *rest = lines
    return "\n".join([f"{header} {first}", *(f"{INDENT}{line}" for line in rest)])
