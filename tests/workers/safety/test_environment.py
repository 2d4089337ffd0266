"""The step environment: no secret reaches a job, and Python started in a folder a sent file
controls imports colabot's and the frameworks' code, never what the folder holds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.hostile.plants import plant, ran
from workers.safety.environment import SOURCE_ROOT, is_secret_variable, step_environment

SECRETS = {
    "COLABOT_TELEGRAM_TOKEN": "123456:secret-token",
    "TELEGRAM_TOKEN": "123456:secret-token",
    "WANDB_API_KEY": "0123456789abcdef0123456789abcdef01234567",
    "RAY_AUTH_TOKEN": "ray-secret",
    "GOOGLE_APPLICATION_CREDENTIALS": "/home/me/key.json",
}


def test_secrets_are_removed_and_python_is_made_safe() -> None:
    base = {**SECRETS, "PATH": "/usr/bin", "PYTHONPATH": "/opt/lib"}
    env = step_environment({"WANDB_MODE": "offline", "X": "1"}, base=base)
    assert not set(SECRETS) & set(env)
    assert all(is_secret_variable(name) for name in SECRETS)
    assert env["PYTHONSAFEPATH"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONPATH"] == os.pathsep.join([SOURCE_ROOT, "/opt/lib"])
    assert Path(SOURCE_ROOT, "workers", "engine.py").is_file()
    # A step's own settings come last: the W&B variables colabot sets for a run.
    assert env["WANDB_MODE"] == "offline" and env["X"] == "1" and env["PATH"] == "/usr/bin"


def test_python_in_a_planted_folder_imports_the_real_code(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    folder = plant(tmp_path / "unpacked input", marks)
    code = "import json, pathlib, workers; print(workers.__file__)"
    argvs = (
        [sys.executable, "-m", "workers.kinds.selftest.tools", "--help"],
        [sys.executable, "-c", code],
    )
    for argv in argvs:
        done = subprocess.run(
            argv, cwd=folder, env=step_environment(), capture_output=True, text=True, timeout=60
        )
        assert done.returncode in (0, 2), done.stderr
    assert ran(marks) == []
    # The same commands with colabot's own environment run the planted code: the plant works.
    for argv in argvs:
        subprocess.run(argv, cwd=folder, env=dict(os.environ), capture_output=True, timeout=60)
    assert {"json", "workers"} <= set(ran(marks))
