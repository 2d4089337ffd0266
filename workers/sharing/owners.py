"""Who started a job, and who may act on it."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class Owner:
    """The person who started a job: their Telegram user id and a name to show (``@alice``
    when they have a username, else their first name)."""

    user_id: int
    name: str = ""

    @property
    def label(self) -> str:
        """How the owner is named in a message (their id when no name is known)."""
        return self.name or f"user {self.user_id}"


def may_act(owner: Owner | None, user_id: int | None, admins: Collection[int]) -> bool:
    """Whether ``user_id`` may look at or change a job owned by ``owner``: its owner and
    admins may; a job without an owner (from before owners were recorded) is open to every
    allowed user; an unknown caller may not."""
    if owner is None:
        return True
    if user_id is None:
        return False
    return user_id == owner.user_id or user_id in admins


def not_yours(job_id: int, owner: Owner) -> str:
    """The one line someone else gets: ``job #7 is @alice's``."""
    return f"job #{job_id} is {owner.label}'s"
