"""Who may use the bot, and where: pure decisions the access guard and the broadcasts share.

By default colabot answers allowed users in their private chats only. A group (or
supergroup) is served only when it is listed in ``telegram.allowed_chats``, and then only to
allowed users in it: every member of an opted-in group sees the job lists, logs and results
posted there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

PRIVATE = "private"


class Verdict(StrEnum):
    """The guard's answer to one update."""

    ALLOW = "allow"
    STRANGER = "stranger"
    CHAT_NOT_ALLOWED = "chat not allowed"


@dataclass(frozen=True)
class AccessPolicy:
    """Allowed users, and the groups opted in."""

    users: frozenset[int]
    groups: frozenset[int] = frozenset()

    def verdict(self, user_id: int | None, chat_id: int | None, chat_type: str | None) -> Verdict:
        """Whether an update from ``user_id`` in ``chat_id`` may reach any command or button."""
        if user_id is None or user_id not in self.users:
            return Verdict.STRANGER
        if chat_id is None:
            return Verdict.CHAT_NOT_ALLOWED
        if chat_type == PRIVATE:
            return Verdict.ALLOW if chat_id == user_id else Verdict.CHAT_NOT_ALLOWED
        return Verdict.ALLOW if chat_id in self.groups else Verdict.CHAT_NOT_ALLOWED

    def serves(self, chat_id: int | None, chat_type: str | None) -> bool:
        """Whether colabot serves this chat at all: an allowed user's private chat, or an
        opted-in group. Telegram's own notes about a chat (the bot removed or blocked, a
        group that became a supergroup, members who came or went) count only for such a
        chat, whoever caused them: a stranger's chat changes nothing colabot keeps."""
        if chat_id is None:
            return False
        if chat_type == PRIVATE:
            return chat_id in self.users
        return chat_id in self.groups
