"""Who may use the bot, and where: pure decisions the access guard and the broadcasts share.

By default colabot answers allowed users in their private chats only. A group (or
supergroup) is served only when it is listed in ``telegram.allowed_chats``, and then only to
allowed users in it: every member of an opted-in group sees the job lists, logs and results
posted there.

In a lab's bot each job has an owner (who started it): only its owner and the admins
(``telegram.admins``) look at it or act on it, and the runtime's warnings go to the people
whose jobs it concerns and to the admins. A job from before owners were recorded is open to
every allowed user.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from workers.sharing.owners import Owner, may_act

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
    admins: frozenset[int] = frozenset()

    def may_act(self, owner: Owner | None, user_id: int | None) -> bool:
        """Whether ``user_id`` may look at or act on a job ``owner`` started."""
        return may_act(owner, user_id, self.admins)

    def runtime_recipients(
        self, owners: Iterable[int], job_groups: Iterable[int], met_groups: Iterable[int]
    ) -> list[int]:
        """Where a runtime warning goes: the private chats of the admins and of the owners
        of the jobs it concerns, and the opted-in groups those jobs were started in. When
        nobody is concerned (no admins, no owned jobs), every allowed user's private chat
        and every opted-in group colabot has met: someone must hear it."""
        people = [u for u in (*sorted(self.admins), *owners) if u in self.users]
        groups = [g for g in job_groups if g in self.groups]
        if not people and not groups:
            people = sorted(self.users)
            groups = [g for g in met_groups if g in self.groups]
        return list(dict.fromkeys([*people, *groups]))

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
