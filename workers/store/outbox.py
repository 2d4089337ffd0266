"""The outbox: every message a person should see, and the outbox's record of what was
delivered where.

Every message is first an ``events`` row; it is marked delivered only after whoever delivers it
has had it accepted, so a crash or an outage loses nothing. A runtime event meant for every chat
notes each chat it reached (``broadcasts``), so a restart sends it on only where it is missing.

The other tables here are the outbox's bookkeeping of where it delivered, so it can deliver
again in the same place: the status message of each job (edited in place), the keepalive
message of each chat, the chats met, migrated and forgotten (where runtime events go), the
runtime warnings already sent and the chats told how videos are re-encoded. The job side
writes events; the chat side (``bot/``) delivers them and keeps this bookkeeping, through the
one :class:`~workers.store.database.Store` and its one connection.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass

from workers.events import Event, EventType, Keepalive, Payload, decode, encode, type_of
from workers.store.connection import Connection, scrubbed, translated


@dataclass(frozen=True)
class StatusRecord:
    """Where a job's status message is in the chat, and what it last said."""

    chat_id: int
    message_id: int
    text: str


def _event_from_row(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"],
        job_id=row["job_id"],
        payload=decode(EventType(row["type"]), json.loads(row["payload"])),
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
    )


class Outbox(Connection):
    """The events outbox and the delivery bookkeeping, in the store's one database."""

    # events ---------------------------------------------------------------------------------

    @staticmethod
    def _insert_event(
        db: sqlite3.Connection, job_id: int | None, payload: Payload, now: float
    ) -> int:
        kind = type_of(payload)
        if isinstance(payload, Keepalive):
            # Only the newest keepalive matters: it replaces one still waiting.
            db.execute("DELETE FROM events WHERE type = ? AND delivered_at IS NULL", (kind.value,))
        cur = db.execute(
            "INSERT INTO events (job_id, type, payload, created_at) VALUES (?, ?, ?, ?)",
            (job_id, kind.value, json.dumps(scrubbed(encode(payload))), now),
        )
        return int(cur.lastrowid or 0)

    @translated
    def add_event(self, job_id: int | None, payload: Payload, *, now: float | None = None) -> int:
        """Append an event to the outbox; return its id."""
        now = time.time() if now is None else now
        with self._tx() as db:
            return self._insert_event(db, job_id, payload, now)

    @translated
    def pending_events(self, limit: int = 100, *, after: int = 0) -> list[Event]:
        """Undelivered events, oldest first; only those with ids over ``after`` (a reader
        that holds the older ones reads only what is new)."""
        rows = self._db.execute(
            "SELECT * FROM events WHERE delivered_at IS NULL AND id > ? ORDER BY id LIMIT ?",
            (after, limit),
        )
        return [_event_from_row(r) for r in rows]

    @translated
    def events_for(self, job_id: int) -> list[Event]:
        """Every event of one job, oldest first."""
        rows = self._db.execute("SELECT * FROM events WHERE job_id = ? ORDER BY id", (job_id,))
        return [_event_from_row(r) for r in rows]

    @translated
    def mark_delivered(self, event_id: int, *, now: float | None = None) -> None:
        """Record that an event reached its reader."""
        now = time.time() if now is None else now
        self._db.execute(
            "UPDATE events SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL",
            (now, event_id),
        )

    @translated
    def delivered_to(self, event_id: int) -> set[int]:
        """The chats a runtime event already reached."""
        rows = self._db.execute("SELECT chat_id FROM broadcasts WHERE event_id = ?", (event_id,))
        return {int(row["chat_id"]) for row in rows}

    @translated
    def note_delivered_to(self, event_id: int, chat_id: int) -> None:
        """Record that a runtime event reached one chat."""
        self._db.execute(
            "INSERT OR IGNORE INTO broadcasts (event_id, chat_id) VALUES (?, ?)",
            (event_id, chat_id),
        )

    @translated
    def forget_deliveries(self, event_id: int) -> None:
        """A runtime event reached every chat: its per-chat record is no longer needed."""
        self._db.execute("DELETE FROM broadcasts WHERE event_id = ?", (event_id,))

    # chats ----------------------------------------------------------------------------------

    @translated
    def status_message(self, job_id: int) -> StatusRecord | None:
        """Where a job's status message is, and what it last said."""
        row = self._db.execute(
            "SELECT * FROM status_messages WHERE job_id = ?", (job_id,)
        ).fetchone()
        if row is None:
            return None
        return StatusRecord(int(row["chat_id"]), int(row["message_id"]), str(row["text"]))

    @translated
    def save_status_message(self, job_id: int, status: StatusRecord) -> None:
        """Record where a job's status message is, and what it says."""
        self._db.execute(
            "INSERT OR REPLACE INTO status_messages (job_id, chat_id, message_id, text) "
            "VALUES (?, ?, ?, ?)",
            (job_id, status.chat_id, status.message_id, scrubbed(status.text)),
        )

    @translated
    def met_chats(self) -> list[int]:
        """Chats colabot has met, oldest first."""
        rows = self._db.execute(
            "SELECT chat_id FROM chats WHERE met_at IS NOT NULL ORDER BY met_at, chat_id"
        )
        return [int(row["chat_id"]) for row in rows]

    @translated
    def meet_chat(self, chat_id: int, *, keep: int, now: float | None = None) -> None:
        """Remember a chat someone used (no longer forgotten); keep the newest ``keep``."""
        now = time.time() if now is None else now
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO chats (chat_id) VALUES (?)", (chat_id,))
            db.execute(
                "UPDATE chats SET met_at = coalesce(met_at, ?), forgotten_at = NULL, "
                "forgotten_reason = NULL WHERE chat_id = ?",
                (now, chat_id),
            )
            db.execute(
                "UPDATE chats SET met_at = NULL WHERE chat_id IN (SELECT chat_id FROM chats "
                "WHERE met_at IS NOT NULL ORDER BY met_at DESC, chat_id DESC LIMIT -1 OFFSET ?)",
                (keep,),
            )

    @translated
    def forget_chat(self, chat_id: int, reason: str, *, now: float | None = None) -> None:
        """Stop counting a chat that blocked or removed the bot (until it is met again)."""
        now = time.time() if now is None else now
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO chats (chat_id) VALUES (?)", (chat_id,))
            db.execute(
                "UPDATE chats SET met_at = NULL, forgotten_at = ?, forgotten_reason = ? "
                "WHERE chat_id = ?",
                (now, scrubbed(reason), chat_id),
            )

    @translated
    def forgotten_chats(self) -> set[int]:
        """Chats that blocked or removed the bot."""
        rows = self._db.execute("SELECT chat_id FROM chats WHERE forgotten_at IS NOT NULL")
        return {int(row["chat_id"]) for row in rows}

    @translated
    def chat_migrations(self) -> dict[int, int]:
        """Old group id -> the supergroup it became."""
        rows = self._db.execute("SELECT old_id, new_id FROM chat_migrations")
        return {int(row["old_id"]): int(row["new_id"]) for row in rows}

    @translated
    def migrate_chat(self, old: int, new: int) -> int:
        """Record that group ``old`` became supergroup ``new`` and move what colabot keeps
        about it, in one transaction; return how many jobs came from that chat.

        Messages stay behind in the old chat (their ids mean nothing in the new one), so the
        status messages and the keepalive there are dropped, to be posted afresh.
        """
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO chat_migrations (old_id, new_id) VALUES (?, ?)", (old, new)
            )
            row = db.execute("SELECT met_at FROM chats WHERE chat_id = ?", (old,)).fetchone()
            db.execute("INSERT OR IGNORE INTO chats (chat_id) VALUES (?)", (new,))
            if row is not None and row["met_at"] is not None:
                db.execute(
                    "UPDATE chats SET met_at = coalesce(met_at, ?) WHERE chat_id = ?",
                    (row["met_at"], new),
                )
            db.execute("DELETE FROM chats WHERE chat_id = ?", (old,))
            db.execute("DELETE FROM status_messages WHERE chat_id = ?", (old,))
            cur = db.execute(
                "UPDATE jobs SET origin = json_set(origin, '$.chat_id', ?) "
                "WHERE json_extract(origin, '$.chat_id') = ?",
                (new, old),
            )
            return int(cur.rowcount)

    @translated
    def note_video_sent(self, chat_id: int) -> bool:
        """Record that a chat was told how videos are re-encoded; False if it already was."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO chats (chat_id) VALUES (?)", (chat_id,))
            cur = db.execute(
                "UPDATE chats SET video_note_sent = 1 WHERE chat_id = ? AND video_note_sent = 0",
                (chat_id,),
            )
            return cur.rowcount == 1

    @translated
    def keepalive_message(self, chat_id: int) -> int | None:
        """The id of the keepalive message shown in a chat."""
        row = self._db.execute(
            "SELECT keepalive_message_id FROM chats WHERE chat_id = ?", (chat_id,)
        ).fetchone()
        value = None if row is None else row["keepalive_message_id"]
        return None if value is None else int(value)

    @translated
    def set_keepalive_message(self, chat_id: int, message_id: int) -> None:
        """Record the keepalive message shown in a chat."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO chats (chat_id) VALUES (?)", (chat_id,))
            db.execute(
                "UPDATE chats SET keepalive_message_id = ? WHERE chat_id = ?", (message_id, chat_id)
            )

    # runtime warnings -----------------------------------------------------------------------

    @translated
    def warnings_sent(self, runtime_started: float) -> frozenset[int]:
        """Lead times (minutes) already warned about on the runtime that started then."""
        rows = self._db.execute(
            "SELECT minutes FROM warnings_sent WHERE runtime_started = ?", (runtime_started,)
        )
        return frozenset(int(row["minutes"]) for row in rows)

    @translated
    def note_warnings_sent(self, runtime_started: float, minutes: Iterable[int]) -> None:
        """Record lead times warned about on a runtime."""
        self._db.executemany(
            "INSERT OR IGNORE INTO warnings_sent (runtime_started, minutes) VALUES (?, ?)",
            [(runtime_started, int(m)) for m in minutes],
        )
