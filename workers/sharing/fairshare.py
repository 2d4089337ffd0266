"""Whose queued job runs next when a slot frees."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from workers.jobs import Job
from workers.sharing.quotas import QuotaSettings, held_reason


@dataclass(frozen=True)
class Pick:
    """The job to start next (None: none may start now), and why each other queued job
    waits, for those that wait for a reason of their own (a quota)."""

    job: Job | None
    held: dict[int, str] = field(default_factory=dict)


def pick_next(
    queued: Sequence[Job],
    running: Sequence[Job],
    settings: QuotaSettings,
    exempt: Collection[int] = (),
) -> Pick:
    """Choose across people: the person with the fewest running jobs first, then the oldest
    submission. A person at ``quotas.running_per_user`` waits (``exempt`` user ids do not);
    jobs without an owner are one group of their own and are never held."""
    counts = Counter(_owner_id(job) for job in running)
    held: dict[int, str] = {}
    candidates: list[Job] = []
    for job in queued:
        owner = job.owner
        if owner is not None and owner.user_id not in exempt:
            reason = held_reason(owner.label, counts[owner.user_id], settings)
            if reason is not None:
                held[job.id] = reason
                continue
        candidates.append(job)
    if not candidates:
        return Pick(None, held)
    chosen = min(candidates, key=lambda job: (counts[_owner_id(job)], job.created_at, job.id))
    return Pick(chosen, held)


def _owner_id(job: Job) -> int | None:
    return job.owner.user_id if job.owner is not None else None
