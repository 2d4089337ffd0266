"""Helpers for the Drive client's tests: random files, changed settings, a progress recorder."""

from __future__ import annotations

import os
from pathlib import Path

from tests.loopback.drive_server import RequestRecord
from workers.drive.client import DriveClient
from workers.drive.settings import DriveSettings, Patience

MIB = 1024 * 1024
FILE_ID = "1AbCdEfGhIjKlMnOpQrStUvWxYz012345"


def random_file(path: Path, size: int) -> bytes:
    """Write ``size`` random bytes to ``path`` and return them."""
    data = os.urandom(size)
    path.write_bytes(data)
    return data


QUICK = Patience(retries=3, backoff_s=0.001, timeout_s=10.0)
"""Quick retries against the loopback server."""


def client_with(settings: DriveSettings, **changes: object) -> DriveClient:
    """A client (not yet connected) for ``settings`` with some fields changed."""
    values = {**settings.__dict__, **changes}
    return DriveClient(DriveSettings(**values), QUICK)


class Recorder:
    """A progress callback that remembers what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))

    def assert_monotonic_to(self, total: int) -> None:
        """Every call grew ``done``, reported ``total``, and the last one reached it."""
        done = [call[0] for call in self.calls]
        assert done == sorted(done)
        assert len(set(done)) == len(done)
        assert self.calls[-1] == (total, total)
        assert all(call[1] == total for call in self.calls)


def is_status_query(record: RequestRecord) -> bool:
    """Whether the request asked a resumable session how many bytes arrived."""
    return record.method == "PUT" and (record.content_range or "").startswith("bytes */")
