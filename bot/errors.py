"""Errors raised by the chat side. Each carries the data needed to explain it."""

from __future__ import annotations

from workers.errors import ColabotError


class ConfigError(ColabotError):
    """A configuration problem; ``key`` is the dotted setting (or env variable) at fault."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class UsageError(ColabotError):
    """A chat command was malformed; ``usage`` is the correct form to show."""

    def __init__(self, problem: str, usage: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.usage = usage


class UploadError(ColabotError):
    """A document sent in the chat cannot be used; ``name`` is its file name."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


class NotYoursError(ColabotError):
    """A request names a job the caller neither owns nor administers."""
