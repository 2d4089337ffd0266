"""Pure helpers that turn counts and times into progress records."""

from __future__ import annotations

import time

from workers.jobs import Progress


def estimate_eta(started_at: float, now: float, done: float, total: float) -> float | None:
    """Seconds left if the rest goes at the average pace so far; None when unknowable."""
    if total <= 0 or done <= 0 or now <= started_at:
        return None
    remaining = max(0.0, total - done)
    return (now - started_at) / done * remaining


class StepCounter:
    """Builds Progress from "N of M" observations, with an ETA from the pace since the first."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self._first: tuple[float, float] | None = None

    def update(
        self,
        done: float,
        total: float | None,
        *,
        metrics: dict[str, float] | None = None,
        now: float | None = None,
        note: str = "",
    ) -> Progress:
        """Progress for ``done`` of ``total`` units observed at ``now``."""
        now = time.time() if now is None else now
        if self._first is None or done < self._first[1]:
            self._first = (now, done)
        eta = None
        if total:
            first_time, first_done = self._first
            rate_done = done - first_done
            if rate_done > 0:
                eta = estimate_eta(first_time, now, rate_done, total - first_done)
        text = f"{self.unit} {done:g}" + (f" of {total:g}" if total else "")
        if note:
            text += f" · {note}"
        return Progress(
            fraction=(min(1.0, done / total) if total else None),
            message=text,
            eta_s=eta,
            step=int(done),
            total=int(total) if total else None,
            metrics=dict(metrics or {}),
            updated_at=now,
        )
