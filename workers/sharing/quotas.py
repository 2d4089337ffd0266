"""``[quotas]``: how much of the lab one person may take, and the decisions that apply it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

WEEK_S = 7 * 24 * 3600.0


@dataclass(frozen=True)
class QuotaSettings:
    """``[quotas]``: ``running_per_user`` jobs may run at once per person (0: no limit);
    ``gpu_hours_per_user_per_week`` GPU-hours per person per week, Monday 00:00 UTC to the
    next (unset: no limit); admins are bound too unless ``admins_exempt``."""

    running_per_user: int = 0
    gpu_hours_per_user_per_week: float | None = None
    admins_exempt: bool = False


def week_start(now: float) -> float:
    """The start of ``now``'s week: the last Monday, 00:00 UTC."""
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (day - timedelta(days=day.weekday())).timestamp()


def held_reason(name: str, running: int, settings: QuotaSettings) -> str | None:
    """Why a person's next job waits although a slot is free (None: it need not wait)."""
    limit = settings.running_per_user
    if limit <= 0 or running < limit:
        return None
    jobs = "job" if running == 1 else "jobs"
    return f"waiting: {name} has {running} running {jobs}, the limit is {limit}"


def submit_refusal(
    name: str, used_gpu_hours: float, settings: QuotaSettings, now: float | None = None
) -> str | None:
    """Why a new job is refused (None: it may be queued): its owner has used up this week's
    GPU-hours. Says when the week resets."""
    quota = settings.gpu_hours_per_user_per_week
    if quota is None or used_gpu_hours < quota:
        return None
    now = time.time() if now is None else now
    resets = week_start(now) + WEEK_S
    when = datetime.fromtimestamp(resets, UTC).strftime("%a %d %b %H:%M UTC")
    return (
        f"{name} has used {used_gpu_hours:.1f} of {quota:g} GPU-hours this week; "
        f"the week resets {when} (in {_span(resets - now)})"
    )


def _span(seconds: float) -> str:
    hours = int(seconds // 3600)
    days, hours = divmod(hours, 24)
    minutes = int(seconds % 3600 // 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
