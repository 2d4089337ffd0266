"""A chat with the bot in a terminal: the offline face of colabot.

A person types lines; the bot's messages, edits, files and button answers print as they
happen. Everything goes through a :class:`BotApiEmulator`, so the bot runs exactly as it
would against Telegram.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TextIO

from emulator import render
from emulator.chat_input import (
    Help,
    Invalid,
    Press,
    Quit,
    Reply,
    SendText,
    Upload,
    parse_line,
)
from emulator.state import DEFAULT_USER_ID, inline_buttons

if TYPE_CHECKING:
    from types import TracebackType

    from emulator.events import BotEvent
    from emulator.server import BotApiEmulator

_LOGGER = logging.getLogger(__name__)
_MOVE_UP_AND_CLEAR = "\x1b[{rows}F\x1b[J"


@dataclass(frozen=True)
class _Block:
    """The last thing printed, so a TTY can redraw it in place when it is edited."""

    chat_id: int
    message_id: int
    rows: int


class TerminalChat:
    """One person's private chat with the bot, in a terminal or any pair of text streams.

    On a TTY, an edit of the message printed last is redrawn in place and a typed line is
    replaced by the numbered message it became; elsewhere every change prints a new line.
    """

    def __init__(
        self,
        emulator: BotApiEmulator,
        user_id: int = DEFAULT_USER_ID,
        *,
        first_name: str = "You",
        input: TextIO | None = None,
        output: TextIO | None = None,
        interactive: bool | None = None,
    ) -> None:
        self.emulator = emulator
        self.user_id = user_id
        self.first_name = first_name
        self._input = input if input is not None else sys.stdin
        self._output = output if output is not None else sys.stdout
        self._interactive = (
            interactive
            if interactive is not None
            else _is_tty(self._output) and _is_tty(self._input)
        )
        self._attached = False
        self._last_block: _Block | None = None
        emulator.add_chat(user_id, first_name=first_name)

    @property
    def chat_id(self) -> int:
        """The private chat's id (the person's user id)."""
        return self.user_id

    # Lifecycle

    def attach(self) -> None:
        """Start printing the bot's activity."""
        if not self._attached:
            self.emulator.add_listener(self._on_event)
            self._attached = True

    def detach(self) -> None:
        """Stop printing the bot's activity."""
        if self._attached:
            self.emulator.remove_listener(self._on_event)
            self._attached = False

    async def __aenter__(self) -> Self:
        self.attach()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.detach()

    async def run(self) -> None:
        """Read lines until ``:quit`` or end of input, acting on each; never blocks the loop."""
        self.attach()
        self._print(render.render_banner(f"@{self.emulator.api.bot_username}"))
        try:
            async for line in _read_lines(self._input):
                if not await self.handle_line(line):
                    break
        finally:
            self.detach()

    # Input

    async def handle_line(self, line: str) -> bool:
        """Act on one typed line; return ``False`` when the person asked to leave."""
        self.attach()
        request = parse_line(line)
        if request is None:
            return True
        try:
            if isinstance(request, Quit):
                return False
            if isinstance(request, Help):
                self._print(render.HELP_TEXT)
            elif isinstance(request, Invalid):
                self._print(render.render_error(request.reason))
            elif isinstance(request, SendText):
                message = await self.emulator.send_text(request.text, user_id=self.user_id)
                self._echo(line, render.render_message(message, who="you"))
            elif isinstance(request, Reply):
                message = await self.emulator.send_text(
                    request.text, user_id=self.user_id, reply_to_message_id=request.message_id
                )
                self._echo(line, render.render_message(message, who="you"))
            elif isinstance(request, Upload):
                await self._upload(line, request)
            else:
                await self._press(line, request)
        except (ValueError, OSError) as exc:
            self._print(render.render_error(str(exc)))
        except Exception as exc:
            _LOGGER.debug("terminal input failed", exc_info=True)
            self._print(render.render_error(f"that did not work ({type(exc).__name__})"))
        return True

    async def _upload(self, line: str, request: Upload) -> None:
        path = await asyncio.to_thread(Path(request.path).expanduser)
        message = await self.emulator.send_document(
            path, caption=request.caption, user_id=self.user_id
        )
        self._echo(line, render.render_message(message, who="you"))

    async def _press(self, line: str, request: Press) -> None:
        message = self._message_with_buttons(request.message_id)
        buttons = inline_buttons(message)
        if not 1 <= request.button <= len(buttons):
            raise ValueError(
                f"message #{message['message_id']} has {render.describe_buttons(message)}"
            )
        button = buttons[request.button - 1]
        message_id = int(message["message_id"])
        if "callback_data" in button:
            self._echo(line, render.render_press(request.button, button, message_id))
            await self.emulator.press_button(
                self.chat_id, message_id, str(button["callback_data"]), user_id=self.user_id
            )
        elif "url" in button:
            self._print(render.render_link(request.button, button))
        else:
            raise ValueError(f"b{request.button} cannot be pressed in the terminal")

    def _message_with_buttons(self, message_id: int | None) -> dict[str, Any]:
        if message_id is not None:
            message = self.emulator.message(self.chat_id, message_id)
            if message is None:
                raise ValueError(f"there is no message #{message_id}")
            if not inline_buttons(message):
                raise ValueError(f"message #{message_id} has no buttons")
            return message
        for message in reversed(self.emulator.messages(self.chat_id)):
            if inline_buttons(message):
                return message
        raise ValueError("no message has buttons")

    # Output

    def _on_event(self, event: BotEvent) -> None:
        if event.chat_id != self.chat_id and event.kind == "callback_answer":
            return
        last = self._last_block
        if (
            self._interactive
            and event.kind == "edit"
            and event.message_id is not None
            and last is not None
            and (last.chat_id, last.message_id) == (event.chat_id, event.message_id)
        ):
            text = render.render_message(
                event.message or {}, who="bot", file_path=event.file_path, edited=True
            )
            self._write(_MOVE_UP_AND_CLEAR.format(rows=last.rows) + text + "\n")
            self._remember(event, text)
            return
        text = render.render_event(event, own_chat=self.chat_id)
        self._print(text)
        if event.kind in {"message", "document", "photo", "video", "edit"}:
            self._remember(event, text)

    def _remember(self, event: BotEvent, text: str) -> None:
        if event.message_id is not None:
            rows = render.terminal_rows(text, _columns())
            self._last_block = _Block(event.chat_id, event.message_id, rows)

    def _echo(self, typed: str, text: str) -> None:
        """Print what the person sent; on a TTY it replaces the line they typed."""
        if self._interactive:
            rows = render.terminal_rows(typed.rstrip("\r\n"), _columns())
            self._write(_MOVE_UP_AND_CLEAR.format(rows=rows))
        self._print(text)

    def _print(self, text: str) -> None:
        self._last_block = None
        self._write(text + "\n")

    def _write(self, text: str) -> None:
        try:
            self._output.write(text)
        except UnicodeEncodeError:
            encoding = getattr(self._output, "encoding", None) or "ascii"
            self._output.write(text.encode(encoding, "replace").decode(encoding))
        with contextlib.suppress(OSError, ValueError):
            self._output.flush()


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _columns() -> int:
    return shutil.get_terminal_size(fallback=(80, 24)).columns


async def _read_lines(stream: TextIO) -> AsyncIterator[str]:
    """Yield lines from ``stream`` without blocking the event loop.

    A daemon thread does the blocking reads, which works for terminals, pipes, files and
    in-memory streams alike and never keeps the process alive at exit.
    """
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def deliver(line: str | None) -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(lines.put_nowait, line)

    def pump() -> None:
        try:
            for line in iter(stream.readline, ""):
                deliver(line)
        except (OSError, ValueError):
            pass
        finally:
            deliver(None)

    threading.Thread(target=pump, name="terminal-chat-input", daemon=True).start()
    while (line := await lines.get()) is not None:
        yield line
