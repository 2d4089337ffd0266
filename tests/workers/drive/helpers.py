"""Helpers for the Drive client's tests: random files, changed settings, a progress recorder."""

from __future__ import annotations

import os
from pathlib import Path

from tests.loopback.drive_server import DriveServer, RequestRecord
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


COLAB_AUTH = '''"""Stands in for Colab's google.colab.auth: the person consented in the browser."""


def authenticate_user(clear_output=True):
    return None
'''


def colab_environment(base: dict[str, str], folder: Path, server: DriveServer) -> dict[str, str]:
    """``base`` as the environment of a process on today's Colab, as far as signing in goes:
    ``USE_AUTH_EPHEM=1``, tokens from the metadata server (the loopback server's, after
    ``server.new_colab_user()``), no application-default credentials file, and Colab's
    ``google.colab.auth`` (a stand-in written under ``folder``, first on PYTHONPATH)."""
    package = folder / "google" / "colab"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "auth.py").write_text(COLAB_AUTH)
    home = folder / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in base.items()
        if k not in ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG")
    }
    env.update(
        USE_AUTH_EPHEM="1",
        GCE_METADATA_IP=server.metadata_host,
        GCE_METADATA_ROOT=server.metadata_host,
        NO_GCE_CHECK="False",
        HOME=str(home),
        PYTHONPATH=os.pathsep.join(p for p in (str(folder), base.get("PYTHONPATH", "")) if p),
    )
    return env
