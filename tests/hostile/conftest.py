"""Fixtures for the hostile tests: the chat side's and the job side's, plus a colabot run as
its own process (the CLI), since several attacks are on start-up and on the process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bot.conftest import (  # noqa: F401 - fixtures, found by name
    chat_config,
    colabot,
    emu,
    emu_mode,
    inputs_dir,
    person,
    start_colabot,
)
from tests.workers.conftest import (  # noqa: F401 - fixtures, found by name
    engine,
    engine_settings,
    input_root,
    store,
    wait_for_state,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]


def colabot_env(**settings: str) -> dict[str, str]:
    """The environment for a colabot process: ours without COLABOT_ settings, plus these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLABOT_")}
    env.update({f"COLABOT_{k.upper()}": v for k, v in settings.items()})
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """``colabot ARGS`` as a user runs it; stdin is closed (the offline chat ends at once)."""
    return subprocess.run(
        cli_command(*args),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def cli_command(*args: str) -> list[str]:
    """The argv of ``colabot ARGS``: the console script when installed, else ``-m bot.cli``."""
    script = Path(sys.executable).with_name("colabot")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]
    return [*command, *args]


async def start_cli(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    """``colabot ARGS`` in its own process, while this event loop goes on serving the
    loopback servers it talks to. stdout and stderr are pipes."""
    return await asyncio.create_subprocess_exec(
        *cli_command(*args),
        env=env,
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish_cli(process: asyncio.subprocess.Process, timeout: float = 60.0) -> tuple[int, str]:
    """Wait for a CLI process; return its exit code and its stderr."""
    _, stderr = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def stop_cli(process: asyncio.subprocess.Process, timeout: float = 60.0) -> tuple[int, str]:
    """Stop a running CLI process the way Ctrl-C would; return its exit code and stderr."""
    if process.returncode is None:
        process.send_signal(signal.SIGINT)
    return await finish_cli(process, timeout)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB filesystem of its own (a tmpfs; root only), unmounted after the test."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("SKIPPED LOUDLY: the disk-full tests mount a small tmpfs, which needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"SKIPPED LOUDLY: cannot mount a tmpfs here ({done.stderr.strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
