"""What a line typed into the terminal chat asks for (pure parsing, no effects)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_PRESS = re.compile(r"b(\d+)(?:\.(\d+))?")
_QUOTES = {'"', "'"}


@dataclass(frozen=True)
class SendText:
    """Send ``text`` as a message."""

    text: str


@dataclass(frozen=True)
class Upload:
    """Send the file at ``path`` as a document, with an optional caption."""

    path: str
    caption: str | None


@dataclass(frozen=True)
class Reply:
    """Send ``text`` as a reply to message ``message_id``."""

    message_id: int
    text: str


@dataclass(frozen=True)
class Press:
    """Press button ``button`` (from 1) of ``message_id``, or of the newest one with buttons."""

    button: int
    message_id: int | None


@dataclass(frozen=True)
class Help:
    """Show the terminal commands."""


@dataclass(frozen=True)
class Quit:
    """Leave the chat."""


@dataclass(frozen=True)
class Invalid:
    """A terminal command used wrongly; ``reason`` says how to use it."""

    reason: str


ChatInput = SendText | Upload | Reply | Press | Help | Quit | Invalid


def parse_line(line: str) -> ChatInput | None:
    """Parse one typed line; ``None`` for a blank line."""
    line = line.rstrip("\r\n")
    stripped = line.strip()
    if not stripped:
        return None
    if stripped.startswith(":"):
        return _terminal_command(stripped)
    word, _, rest = stripped.partition(" ")
    if word == "/upload":
        return _upload(rest.strip())
    if word == "/reply":
        return _reply(rest.strip())
    press = _PRESS.fullmatch(stripped)
    if press is not None:
        message = press.group(2)
        return Press(int(press.group(1)), int(message) if message else None)
    return SendText(line)


def _terminal_command(text: str) -> ChatInput:
    name, _, rest = text.partition(" ")
    if name in {":help", ":h", ":?"}:
        return Help()
    if name in {":quit", ":q", ":exit"}:
        return Quit()
    if name == ":say":
        return SendText(rest) if rest.strip() else Invalid("usage: :say text")
    return Invalid(f"unknown terminal command {name}; :help lists them")


def _upload(rest: str) -> ChatInput:
    usage = Invalid("usage: /upload PATH [caption]")
    if not rest:
        return usage
    if rest[0] in _QUOTES:
        end = rest.find(rest[0], 1)
        if end == -1:
            return Invalid("the path's closing quote is missing")
        path, caption = rest[1:end], rest[end + 1 :].strip()
    else:
        path, _, caption = rest.partition(" ")
        caption = caption.strip()
    if not path:
        return usage
    return Upload(path=path, caption=caption or None)


def _reply(rest: str) -> ChatInput:
    number, _, text = rest.partition(" ")
    number = number.removeprefix("#")
    if not number.isdigit() or not text.strip():
        return Invalid("usage: /reply N text")
    return Reply(message_id=int(number), text=text.strip())
