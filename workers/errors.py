"""Errors raised by the job side. Each carries the data a caller needs to explain it."""

from __future__ import annotations


class ColabotError(Exception):
    """Base of every error colabot raises on purpose; its message is safe to show a user."""


class SpecError(ColabotError):
    """A job spec was refused at submit time; ``field`` names the offending part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnknownJobError(ColabotError):
    """No job has this id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"there is no job {job_id}")
        self.job_id = job_id


class JobStateError(ColabotError):
    """The job is not in a state that allows the requested operation."""

    def __init__(self, job_id: int, state: str, operation: str) -> None:
        super().__init__(f"job {job_id} is {state}; cannot {operation} it")
        self.job_id = job_id
        self.state = state
        self.operation = operation


class QuotaError(ColabotError):
    """A job its owner may not start now: a quota (``[quotas]``) is used up; the message
    says which, and when it resets."""


class StopEarlyError(ColabotError):
    """A running job's training cannot be stopped early now; ``reason`` says why."""

    def __init__(self, job_id: int, reason: str) -> None:
        super().__init__(f"job {job_id} cannot stop early: {reason}")
        self.job_id = job_id
        self.reason = reason


class PlotError(ColabotError):
    """No loss picture can be drawn for a job; ``reason`` says why."""

    def __init__(self, job_id: int, reason: str) -> None:
        super().__init__(f"no loss picture for job {job_id}: {reason}")
        self.job_id = job_id
        self.reason = reason


class CompareError(ColabotError):
    """Two jobs that cannot be compared; ``reason`` says why (a job still running, not a
    finished training, or jobs of different kinds)."""

    def __init__(self, first: int, second: int, reason: str) -> None:
        super().__init__(f"cannot compare job {first} with job {second}: {reason}")
        self.first = first
        self.second = second
        self.reason = reason


class InvalidTransitionError(ColabotError):
    """A state change that the transition table does not allow."""

    def __init__(self, source: str, target: str) -> None:
        super().__init__(f"a job cannot go from {source} to {target}")
        self.source = source
        self.target = target


class StepFailedError(ColabotError):
    """A job step ended badly; ``reason`` is the human explanation, ``tail`` the last log lines."""

    def __init__(self, step: str, reason: str, tail: list[str] | None = None) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason
        self.tail = tail or []


class StartError(ColabotError):
    """A step could not be started (no such program, a cluster that refused it)."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(reason)
        self.what = what
        self.reason = reason


class ExecutorError(ColabotError):
    """The executor cannot be used: a cluster that cannot be reached, refuses the
    credentials, or does not share the data folder. ``executor`` names it."""

    def __init__(self, executor: str, reason: str) -> None:
        super().__init__(reason)
        self.executor = executor
        self.reason = reason


class StepLostError(ColabotError):
    """A step a previous colabot started is gone (its cluster went down, its job vanished)."""

    def __init__(self, ref: str, reason: str) -> None:
        super().__init__(reason)
        self.ref = ref
        self.reason = reason


class ArchiveError(ColabotError):
    """An archive was refused (unsafe entry, too large, too many files, corrupt)."""

    def __init__(self, archive: str, reason: str) -> None:
        super().__init__(f"{archive}: {reason}")
        self.archive = archive
        self.reason = reason


class InputError(ColabotError):
    """An input could not be resolved or fetched; ``source`` is what the user gave."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class DriveError(ColabotError):
    """A Drive operation failed; ``operation`` says which, ``status`` is the HTTP status if any."""

    def __init__(self, operation: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"Drive {operation} failed: {reason}")
        self.operation = operation
        self.reason = reason
        self.status = status


class DriveAuthError(DriveError):
    """Drive credentials are missing, unreadable or refused; ``setting`` names the config key."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__("authentication", f"{setting}: {reason}")
        self.setting = setting


class DriveQuotaError(DriveError):
    """Drive refused the operation for quota or rate reasons."""


class DrivePermissionError(DriveError):
    """The credentials cannot read or write the file or folder: ``detail`` is Google's reason
    and message, ``share_with`` the service account to share it with (None for a person)."""

    def __init__(
        self,
        operation: str,
        reason: str,
        status: int | None = None,
        *,
        detail: str = "",
        share_with: str | None = None,
    ) -> None:
        super().__init__(operation, reason, status)
        self.detail = detail
        self.share_with = share_with


class ResultsError(ColabotError):
    """A results backend could not store or fetch something."""

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"results ({backend}): {reason}")
        self.backend = backend
        self.reason = reason


class DiskSpaceError(ColabotError):
    """Too little free space in the data folder to start a job."""

    def __init__(self, folder: str, free_mb: float, min_free_mb: float) -> None:
        super().__init__(
            f"not enough free disk space to start a job: {free_mb:.1f} MB free in {folder} "
            f"(worker.min_free_disk_mb is {min_free_mb:g}); free some space or lower it"
        )
        self.folder = folder
        self.free_mb = free_mb
        self.min_free_mb = min_free_mb


class StoreError(ColabotError):
    """colabot's database cannot be opened or written; ``path`` is the database file."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class StoreBusyError(StoreError):
    """The database is locked by another writer for longer than colabot waits."""


class StoreFullError(StoreError):
    """The disk under the database is full."""


class DataDirLockedError(ColabotError):
    """Another colabot process holds the data folder."""

    def __init__(self, folder: str, pid: int | None) -> None:
        holder = f"process {pid}" if pid else "another process"
        super().__init__(
            f"another colabot ({holder}) is already running on the data folder {folder}; "
            "stop it first, or give this one its own worker.data_dir"
        )
        self.folder = folder
        self.pid = pid


class DriveSetupError(DriveError):
    """The Drive set-up cannot work as configured (an API not enabled, a service account
    asked to store files outside a shared drive); the message says what to change."""
