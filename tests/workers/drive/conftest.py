"""Fixtures of the Drive client's tests: Colab's sign-in, in this process."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from tests.loopback.drive_server import DriveServer


@pytest.fixture
def colab_sign_in(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Stands in for the Colab runtime's ``google.colab.auth`` (the browser consent, which
    no test can give); returns the sign-ins asked for."""
    sign_ins: list[str] = []
    colab_auth = types.ModuleType("google.colab.auth")
    colab_auth.authenticate_user = lambda: sign_ins.append("signed in")  # type: ignore[attr-defined]
    colab = types.ModuleType("google.colab")
    colab.auth = colab_auth  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.auth", colab_auth)
    return sign_ins


@pytest.fixture
def colab_metadata(
    drive_server: DriveServer,
    colab_sign_in: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """Today's Colab sign-in (``USE_AUTH_EPHEM=1``) in this process: oauth2client finds the
    loopback server as the GCE metadata server, which hands out tokens for the person signed
    in; no application-default credentials file is there. Returns the person's e-mail."""
    import oauth2client.client as oauth2client_client
    from oauth2client.contrib import _metadata

    host = drive_server.metadata_host
    monkeypatch.setenv("USE_AUTH_EPHEM", "1")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.delenv("CLOUDSDK_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "colab-home"))
    # oauth2client reads GCE_METADATA_IP, GCE_METADATA_ROOT and NO_GCE_CHECK when it is first
    # imported, long before this test; a process started on Colab has them from the start.
    monkeypatch.setattr(oauth2client_client, "_GCE_METADATA_URI", f"http://{host}")
    monkeypatch.setattr(oauth2client_client, "NO_GCE_CHECK", "False")
    monkeypatch.setattr(oauth2client_client.SETTINGS, "env_name", None)
    monkeypatch.setattr(_metadata.get, "__defaults__", (f"http://{host}/computeMetadata/v1/", None))
    return drive_server.new_colab_user()
