"""How often colabot may edit a status message, within Telegram's limits (pure: no I/O).

Telegram allows about 30 messages a second in all, about one message a second in a private
chat (short bursts pass) and about twenty a minute in a group, edits included. A job's status
message is edited as it progresses; with many jobs in one chat those edits would use the whole
budget, so they are spaced out per job and capped per chat (below Telegram's limit, leaving
room for what people must not miss: a job started, finished or failed, a reply to a command)
and in all. Those messages always go first: they are never held back, and they count against
the budget the edits share. When a chat's budget is spent, the job whose message waited
longest is edited next, so that every job's message moves.

The pacer decides which edits are worth sending; the rate limiter (:mod:`bot.ratelimit`)
keeps Telegram's limits themselves, with edits at the lowest priority, and the delivery
(:mod:`bot.delivery`) sends no edit to a chat while events wait to go there.
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
    """Decides, per chat and job, whether a status edit may go out."""

    private_interval_s: float = 3.0
    group_interval_s: float = 10.0
    group_messages_per_minute: int = 15
    private_messages_per_minute: int = 40
    edits_per_second: int = 8
    _last_edit: dict[tuple[int, int], float] = field(default_factory=dict)
    _sent: dict[int, deque[float]] = field(default_factory=dict)
    _edits: deque[float] = field(default_factory=deque)

    def may_edit(self, chat_id: int, job_id: int, now: float) -> bool:
        """Whether an ordinary (not forced) edit of a job's status message may go out."""
        return self.next_edit_at(chat_id, job_id, now) <= now

    def next_edit_at(self, chat_id: int, job_id: int, now: float) -> float:
        """The earliest time an ordinary edit of a job's status message may go out."""
        interval = self.group_interval_s if is_group(chat_id) else self.private_interval_s
        last = self._last_edit.get((chat_id, job_id))
        at = now if last is None else max(now, last + interval)
        budget = self._budget(chat_id)
        recent = self._recent(chat_id, now)
        if len(recent) >= budget:
            # The budget frees as the oldest messages leave the one-minute window.
            at = max(at, recent[len(recent) - budget] + WINDOW_S)
        edits = self._recent_edits(now)
        if len(edits) >= self.edits_per_second:
            at = max(at, edits[len(edits) - self.edits_per_second] + 1.0)
        return at

    def last_edit(self, chat_id: int, job_id: int) -> float:
        """When a job's status message was last edited (0: never), to edit the longest
        waiting first."""
        return self._last_edit.get((chat_id, job_id), 0.0)

    def edited(self, chat_id: int, job_id: int, now: float) -> None:
        """Record an edit that went out (forced ones too)."""
        self._last_edit[(chat_id, job_id)] = now
        self._recent_edits(now).append(now)
        self.sent(chat_id, now)

    def sent(self, chat_id: int, now: float) -> None:
        """Record a message sent to a chat: it uses up the budget the edits share."""
        self._recent(chat_id, now).append(now)

    def forget(self, job_id: int) -> None:
        """A job ended: its edit times are no longer needed."""
        for key in [key for key in self._last_edit if key[1] == job_id]:
            del self._last_edit[key]

    def _budget(self, chat_id: int) -> int:
        if is_group(chat_id):
            return self.group_messages_per_minute
        return self.private_messages_per_minute

    def _recent(self, chat_id: int, now: float) -> deque[float]:
        times = self._sent.setdefault(chat_id, deque())
        while times and now - times[0] >= WINDOW_S:
            times.popleft()
        return times

    def _recent_edits(self, now: float) -> deque[float]:
        while self._edits and now - self._edits[0] >= 1.0:
            self._edits.popleft()
        return self._edits
