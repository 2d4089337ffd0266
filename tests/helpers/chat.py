"""The emulated chat's people: the allowed user (a :class:`Person` who types and presses
buttons), a stranger, and the bot whose token must never show."""

from __future__ import annotations

from emulator import DEFAULT_USER_ID, BotApiEmulator, BotEvent

BOT_ID = 123456
"""The emulated bot: its token is ``emu.token``, ``f"{BOT_ID}:<random>"``, new at each start."""
USER = DEFAULT_USER_ID
STRANGER = 4242


def secret_of(emu: BotApiEmulator) -> str:
    """The secret part of the emulator's token: what must never show anywhere."""
    return emu.token.partition(":")[2]


class Person:
    """The allowed user's side of the chat."""

    def __init__(self, emu: BotApiEmulator, user_id: int = USER) -> None:
        self.emu = emu
        self.user_id = user_id

    async def say(self, text: str, timeout: float = 15.0) -> BotEvent:
        """Send a text and return the bot's reply to it."""
        sent = await self.emu.send_text(text, user_id=self.user_id)
        return await self.reply_to(sent["message_id"], timeout=timeout)

    async def reply_to(self, message_id: int, timeout: float = 15.0) -> BotEvent:
        """The bot's first new message replying to ``message_id``."""
        return await self.emu.wait_for(
            lambda e: (
                e.kind in ("message", "document", "photo", "video")
                and ((e.message or {}).get("reply_to_message") or {}).get("message_id")
                == message_id
            ),
            chat_id=self.user_id,
            timeout=timeout,
        )

    async def next_message(self, contains: str = "", timeout: float = 15.0) -> BotEvent:
        """The next new message (text, document, photo or video) from the bot, optionally
        containing ``contains``."""
        return await self.emu.wait_for(
            lambda e: (
                e.kind in ("message", "document", "photo", "video")
                and contains in (e.text or "") + str((e.message or {}).get("caption", ""))
            ),
            chat_id=self.user_id,
            timeout=timeout,
        )

    async def next_edit(self, contains: str, timeout: float = 30.0) -> BotEvent:
        """The next edit whose text contains ``contains``."""
        return await self.emu.wait_for(
            lambda e: e.kind == "edit" and contains in (e.text or ""),
            chat_id=self.user_id,
            timeout=timeout,
        )

    async def press(self, event: BotEvent, label: str) -> str:
        """Press the button labelled ``label`` on the message of ``event``."""
        message = self.emu.message(self.user_id, event.message_id or 0) or {}
        rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
        for row in rows:
            for button in row:
                if button["text"] == label:
                    return await self.emu.press_button(
                        self.user_id,
                        event.message_id or 0,
                        button["callback_data"],
                        user_id=self.user_id,
                    )
        raise AssertionError(f"no button {label!r} on message {event.describe()}")
