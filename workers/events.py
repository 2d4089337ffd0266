"""The outbox's events: one dataclass per kind of event, and the one converter between them
and the JSON the store keeps.

Every message a person should get is first one of these, stored with the job's state change
it belongs to; :mod:`bot.delivery` turns each into chat messages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias

from workers.jobs import Link
from workers.store.records import build


class EventType(StrEnum):
    """The kind of an outbox row (its ``type`` column)."""

    QUEUED = "queued"
    STARTED = "started"
    NOTICE = "notice"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    FILE = "file"
    ALBUM = "album"
    RESUMED = "resumed"
    KEEPALIVE = "keepalive"


@dataclass(frozen=True)
class NoticeButton:
    """An inline button under a notice: its label and the callback data it sends."""

    label: str
    data: str


@dataclass(frozen=True)
class Queued:
    """A job was accepted and waits for its turn."""


@dataclass(frozen=True)
class Resumed:
    """An interrupted or failed job was queued again."""


@dataclass(frozen=True)
class Started:
    """A job began to run (``attempt`` counts from 1)."""

    attempt: int = 1


@dataclass(frozen=True)
class Notice:
    """Something to tell a person: plain ``text`` (escaped when shown), or ready ``html``."""

    text: str = ""
    html: str | None = None
    buttons: list[list[NoticeButton]] = field(default_factory=list)


@dataclass(frozen=True)
class Succeeded:
    """A job finished: its summary, where its results are, and its final metrics."""

    summary: str = ""
    links: list[Link] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    """A job failed: why, in plain words, in which step, and the last lines it printed."""

    reason: str = "failed"
    tail: list[str] = field(default_factory=list)
    step: str = ""


@dataclass(frozen=True)
class Cancelled:
    """A job was cancelled."""


@dataclass(frozen=True)
class Interrupted:
    """A job stopped without ending (colabot stopped, the machine or the cluster went away)."""

    reason: str = ""


@dataclass(frozen=True)
class FileReady:
    """A result small enough to send in the chat (a picture when ``photo``, a video that
    plays in the chat when ``video``)."""

    path: str
    caption: str = ""
    photo: bool = False
    video: bool = False


@dataclass(frozen=True)
class Album:
    """Pictures sent together as one album (Telegram's media group: 2 to 10 items, a
    caption each); ``title`` is said once, with the first."""

    paths: list[str]
    captions: list[str] = field(default_factory=list)
    title: str = ""


@dataclass(frozen=True)
class Keepalive:
    """The keepalive message, shown once per chat and edited in place while it is in view.

    Only the newest undelivered one matters, so a new one replaces any still waiting.
    """

    html: str
    buttons: list[list[NoticeButton]] = field(default_factory=list)


Payload: TypeAlias = (
    Queued
    | Resumed
    | Started
    | Notice
    | Succeeded
    | Failed
    | Cancelled
    | Interrupted
    | FileReady
    | Album
    | Keepalive
)

TYPES: dict[EventType, type[Payload]] = {
    EventType.QUEUED: Queued,
    EventType.RESUMED: Resumed,
    EventType.STARTED: Started,
    EventType.NOTICE: Notice,
    EventType.SUCCEEDED: Succeeded,
    EventType.FAILED: Failed,
    EventType.CANCELLED: Cancelled,
    EventType.INTERRUPTED: Interrupted,
    EventType.FILE: FileReady,
    EventType.ALBUM: Album,
    EventType.KEEPALIVE: Keepalive,
}
_TYPE_OF = {cls: kind for kind, cls in TYPES.items()}


def type_of(payload: Payload) -> EventType:
    """The outbox type of a payload."""
    return _TYPE_OF[type(payload)]


def encode(payload: Payload) -> dict[str, Any]:
    """A payload as the JSON object the store keeps."""
    return asdict(payload)


def decode(kind: EventType, data: dict[str, Any]) -> Payload:
    """The payload a stored row holds; fields it lacks take their defaults."""
    return build(TYPES[kind], data)


@dataclass(frozen=True)
class Event:
    """One outbox row: an event about a job (or about the runtime when job_id is None)."""

    id: int
    job_id: int | None
    payload: Payload
    created_at: float
    delivered_at: float | None = None

    @property
    def type(self) -> EventType:
        """The kind of event."""
        return type_of(self.payload)
