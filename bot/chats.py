"""The chats colabot talks in: who may use it where, the chats it has met, groups that became
supergroups, and chats that blocked or removed the bot.

The access decisions are :class:`bot.access.AccessPolicy`'s; this keeps what changes while
colabot runs, in the store, so a restart remembers it:

- the allowed chats people used: the broadcast list;
- groups that became supergroups (old id -> new id). A group listed in
  ``telegram.allowed_chats`` stays allowed under its new id, and everything colabot keeps
  about the old id (job origins, status messages, keepalives) moves to the new one;
- a chat that blocked or removed the bot leaves the broadcast list.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from bot.access import AccessPolicy, Verdict
from workers.store.database import Store

log = logging.getLogger(__name__)

MAX_KNOWN_CHATS = 50
ChatMoved = Callable[[int, int], None]
"""Called with (old chat id, new chat id) after a migration."""


class ChatBook:
    """Allowed chats, met chats and migrations, backed by the store.

    What every update consults (the migrations, the policy that follows them, the chats
    already met) is also kept in memory, so that an ordinary message costs no database
    work: only a new chat, a migration or a forgotten chat writes.
    """

    def __init__(self, store: Store, policy: AccessPolicy) -> None:
        self.store = store
        self._configured = policy
        self._moved: list[ChatMoved] = []
        self._migrations: dict[int, int] | None = None
        self._policy: AccessPolicy | None = None
        self._met: set[int] | None = None
        """Chats met and not forgotten (their rows are current), read once from the store."""

    @property
    def migrations(self) -> dict[int, int]:
        """Old group id -> the supergroup it became."""
        if self._migrations is None:
            self._migrations = self.store.chat_migrations()
        return self._migrations

    @property
    def policy(self) -> AccessPolicy:
        """The configured policy, with migrated groups allowed under their new ids."""
        if self._policy is None:
            groups = set(self._configured.groups)
            migrations = self.migrations
            for old in list(groups):
                groups.add(self.current(old, migrations))
            self._policy = AccessPolicy(
                self._configured.users, frozenset(groups), self._configured.admins
            )
        return self._policy

    def current(self, chat_id: int, migrations: dict[int, int] | None = None) -> int:
        """The id a chat has now, following its migrations."""
        migrations = self.migrations if migrations is None else migrations
        seen = {chat_id}
        while chat_id in migrations and migrations[chat_id] not in seen:
            chat_id = migrations[chat_id]
            seen.add(chat_id)
        return chat_id

    def verdict(self, user_id: int | None, chat_id: int | None, chat_type: str | None) -> Verdict:
        """Whether an update from ``user_id`` in ``chat_id`` may reach a command."""
        return self.policy.verdict(user_id, chat_id, chat_type)

    def serves(self, chat_id: int | None, chat_type: str | None) -> bool:
        """Whether colabot serves this chat (migrated groups under their new ids too)."""
        return self.policy.serves(chat_id, chat_type)

    def first_video(self, chat_id: int) -> bool:
        """True the first time a chat sends a video (it is then told how to keep frames)."""
        return self.store.note_video_sent(chat_id)

    def on_moved(self, callback: ChatMoved) -> None:
        """Call ``callback(old, new)`` after a chat migrated."""
        self._moved.append(callback)

    # the broadcast list -------------------------------------------------------------------

    def known(self) -> list[int]:
        """Chats colabot has met, oldest first."""
        return self.store.met_chats()

    def forgotten(self) -> set[int]:
        """Chats that blocked or removed the bot (until someone writes there again)."""
        return self.store.forgotten_chats()

    def met(self, chat_id: int) -> None:
        """Remember an allowed chat someone used (written once, until it is forgotten)."""
        if self._met is None:
            self._met = set(self.store.met_chats())
        if chat_id in self._met:
            return
        self.store.meet_chat(chat_id, keep=MAX_KNOWN_CHATS)
        # Meeting a new chat can push the oldest out of the list kept: the chats still kept
        # need no write when they speak again, the others are met again.
        self._met = set(self.store.met_chats())

    def forget(self, chat_id: int, why: str) -> None:
        """Stop broadcasting to a chat that blocked or removed the bot."""
        self._met = None
        self.store.forget_chat(chat_id, why)
        log.info("forgot chat %s: %s", chat_id, why)

    def broadcast_chats(
        self, owners: Iterable[int] = (), job_groups: Iterable[int] = ()
    ) -> list[int]:
        """Where runtime warnings and keepalives go (:meth:`AccessPolicy.runtime_recipients`):
        the admins and the owners of the jobs concerned, and the groups those jobs came from,
        minus chats that blocked or removed colabot."""
        policy = self.policy
        forgotten = self.forgotten()
        met = [chat for chat in self.known() if chat in policy.groups]
        groups = [self.current(chat) for chat in job_groups]
        chats = policy.runtime_recipients(owners, groups, met)
        return [chat for chat in chats if chat not in forgotten]

    # migrations ---------------------------------------------------------------------------

    def migrate(self, old: int, new: int) -> bool:
        """Record that group ``old`` is now supergroup ``new`` and move everything colabot
        keeps about it. Only chats colabot knows (met or allowed) are followed."""
        if old == new or self.migrations.get(old) == new:
            return False
        if old not in self.known() and old not in self.policy.groups:
            log.info("ignored the migration of unknown chat %s", old)
            return False
        moved = self.store.migrate_chat(old, new)
        self._migrations, self._policy, self._met = None, None, None
        log.info("chat %s became %s; moved %d jobs to it", old, new, moved)
        for callback in self._moved:
            try:
                callback(old, new)
            except Exception:
                log.exception("a chat migration listener failed")
        return True
