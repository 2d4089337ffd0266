"""Pure decisions about time: which limit warnings are due, when to post a keepalive, when the
runtime counts as idle, when checkpoints need syncing, whether a job will finish in time."""

from __future__ import annotations

from dataclasses import dataclass

from bot.runtime import RuntimeClock


@dataclass(frozen=True)
class Warning:
    """A limit warning: how many minutes before the end, and when it is due."""

    minutes: int
    due_at: float


def warning_plan(clock: RuntimeClock, minutes: tuple[int, ...]) -> list[Warning]:
    """Every warning with its due time, earliest first (largest lead time first)."""
    unique = sorted(set(minutes), reverse=True)
    return [Warning(m, clock.deadline - m * 60) for m in unique]


def due_warning(
    now: float, clock: RuntimeClock, minutes: tuple[int, ...], sent: frozenset[int]
) -> tuple[Warning | None, frozenset[int]]:
    """The one warning to send now (if any) and the updated set of sent lead times.

    When several are due at once (colabot started late, or was asleep), only the most
    urgent is sent and the earlier ones count as sent: one message, not a burst.
    """
    due = [w for w in warning_plan(clock, minutes) if w.due_at <= now and w.minutes not in sent]
    if not due:
        return None, sent
    most_urgent = min(due, key=lambda w: w.minutes)
    return most_urgent, sent | {w.minutes for w in due}


def is_last_warning(warning: Warning, minutes: tuple[int, ...]) -> bool:
    """True for the warning with the shortest lead time."""
    return warning.minutes == min(minutes)


def keepalive_due(now: float, last_sent: float | None, interval_s: float, active: bool) -> bool:
    """A keepalive is due while jobs run or wait, every ``interval_s`` (0 turns it off)."""
    if interval_s <= 0 or not active:
        return False
    return last_sent is None or now - last_sent >= interval_s


def needs_new_keepalive(keepalive_id: int | None, latest_id: int, scrolled: int = 15) -> bool:
    """Post a new keepalive (instead of editing) once the old one is far up the chat."""
    return keepalive_id is None or latest_id - keepalive_id > scrolled


def idle_release_due(
    now: float, idle_since: float | None, idle_minutes: float, offered: bool
) -> bool:
    """Offer to release the runtime once the queue has been empty for ``idle_minutes``."""
    if idle_minutes <= 0 or idle_since is None or offered:
        return False
    return now - idle_since >= idle_minutes * 60


def sync_due(now: float, last_sync: float | None, every_minutes: float) -> bool:
    """Checkpoints are synced every ``every_minutes`` (0: only at warnings)."""
    if every_minutes <= 0:
        return False
    return last_sync is None or now - last_sync >= every_minutes * 60


def finish_verdict(eta_s: float | None, left_s: float) -> str:
    """Whether a running job will finish before the runtime ends, in words."""
    if eta_s is None:
        return "no estimate yet"
    if eta_s <= left_s * 0.9:
        return "should finish in time"
    if eta_s <= left_s:
        return "might just finish"
    return "will NOT finish in time"


def cluster_limit_due(
    now: float, ends_at: float, eta_s: float | None, minutes: tuple[int, ...]
) -> bool:
    """Whether a step that its cluster ends at ``ends_at`` (its time limit) deserves its
    one warning now: its ETA runs past the limit, or the limit is within the shortest
    warning lead time."""
    left = ends_at - now
    if eta_s is not None and eta_s > left:
        return True
    return left <= min(minutes, default=0) * 60
