"""How often colabot may edit a status message, within Telegram's limits (pure: no I/O).

Telegram allows about one message a second in a private chat, and about twenty a minute in a
group, edits included. A job's status message is edited as it progresses; in a group those
edits would use the whole budget, so there they are spaced out and capped, and the messages
people must not miss (a job started, finished or failed) always go first: they are never held
back, and they count against the budget the edits share.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW_S = 60.0


def is_group(chat_id: int) -> bool:
    """Group and supergroup ids are negative; private chats have the person's id."""
    return chat_id < 0


@dataclass
class EditPacer:
    """Decides, per chat and job, whether a status edit may go out now."""

    private_interval_s: float = 3.0
    group_interval_s: float = 10.0
    group_messages_per_minute: int = 15
    _last_edit: dict[tuple[int, int], float] = field(default_factory=dict)
    _group_sent: dict[int, deque[float]] = field(default_factory=dict)

    def may_edit(self, chat_id: int, job_id: int, now: float) -> bool:
        """Whether an ordinary (not forced) edit of a job's status message may go out."""
        interval = self.group_interval_s if is_group(chat_id) else self.private_interval_s
        last = self._last_edit.get((chat_id, job_id))
        if last is not None and now - last < interval:
            return False
        if is_group(chat_id):
            return len(self._recent(chat_id, now)) < self.group_messages_per_minute
        return True

    def next_edit_at(self, chat_id: int, job_id: int, now: float) -> float:
        """The earliest time an ordinary edit of a job's status message may go out."""
        interval = self.group_interval_s if is_group(chat_id) else self.private_interval_s
        last = self._last_edit.get((chat_id, job_id))
        at = now if last is None else max(now, last + interval)
        if is_group(chat_id):
            recent = self._recent(chat_id, now)
            if len(recent) >= self.group_messages_per_minute:
                # The budget frees as the oldest messages leave the one-minute window.
                at = max(at, recent[len(recent) - self.group_messages_per_minute] + WINDOW_S)
        return at

    def edited(self, chat_id: int, job_id: int, now: float) -> None:
        """Record an edit that went out (forced ones too)."""
        self._last_edit[(chat_id, job_id)] = now
        self.sent(chat_id, now)

    def sent(self, chat_id: int, now: float) -> None:
        """Record a message sent to a chat; in a group it uses up the shared budget."""
        if is_group(chat_id):
            self._recent(chat_id, now).append(now)

    def forget(self, job_id: int) -> None:
        """A job ended: its edit times are no longer needed."""
        for key in [key for key in self._last_edit if key[1] == job_id]:
            del self._last_edit[key]

    def _recent(self, chat_id: int, now: float) -> deque[float]:
        times = self._group_sent.setdefault(chat_id, deque())
        while times and now - times[0] >= WINDOW_S:
            times.popleft()
        return times
