"""colabot as its own process, as a user starts it: its environment, ``colabot ARGS``, and a
``colabot run`` on the emulator to kill, to stop with Ctrl-C or to watch stop at start."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from emulator import DEFAULT_USER_ID

ROOT = Path(__file__).resolve().parents[2]
"""colabot's source root."""


def colabot_env(
    home: Path | None = None, api_url: str = "", token: str = "", /, **settings: str
) -> dict[str, str]:
    """The environment of a colabot process: ours without COLABOT_ settings, colabot's source
    root on PYTHONPATH, plus

    - with ``home``: HOME there, and the data and results folders under it;
    - with ``token``: a bot at ``api_url`` (the emulator's) for the emulator's allowed user;
    - ``settings``: a lower-case name is a colabot setting (``worker_data_dir`` ->
      ``COLABOT_WORKER_DATA_DIR``), a name in capitals is set as it is (``PATH``,
      ``COLABOT_RAY_TOKEN``). They override the above.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLABOT_")}
    if home is not None:
        env.update(
            HOME=str(home),
            COLABOT_WORKER_DATA_DIR=str(home / "data"),
            COLABOT_RESULTS_DIR=str(home / "results"),
        )
    if token:
        env.update(
            COLABOT_TELEGRAM_TOKEN=token,
            COLABOT_TELEGRAM_API_URL=api_url,
            COLABOT_TELEGRAM_ALLOWED_USERS=str(DEFAULT_USER_ID),
        )
    env.update({k if k.isupper() else f"COLABOT_{k.upper()}": v for k, v in settings.items()})
    env["PYTHONPATH"] = str(ROOT)
    return env


def cli_command(*args: str) -> list[str]:
    """The argv of ``colabot ARGS``: the console script when installed, else ``-m bot.cli``."""
    script = Path(sys.executable).with_name("colabot")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]
    return [*command, *args]


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 60.0, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """``colabot ARGS`` as a user runs it; stdin is closed (the offline chat ends at once)."""
    return subprocess.run(
        cli_command(*args),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def run_bot_until_it_exits(env: dict[str, str], cwd: Path) -> tuple[int, list[str]]:
    """``colabot run`` that is expected to stop at start: its exit code and stderr lines."""
    done = run_cli("run", env=env, timeout=180, cwd=cwd)
    return done.returncode, [line for line in done.stderr.splitlines() if line.strip()]


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


async def start_bot_process(
    env: dict[str, str], cwd: Path, *, new_session: bool = False, log: Path | None = None
) -> asyncio.subprocess.Process:
    """``colabot run`` in a process of its own (to be killed, or stopped with SIGINT), its
    output thrown away, or its log appended to ``log``; with ``new_session``, the leader
    of a process group of its own."""
    with contextlib.ExitStack() as stack:
        stderr: Any = asyncio.subprocess.DEVNULL
        if log is not None:
            stderr = stack.enter_context(log.open("ab"))
        return await asyncio.create_subprocess_exec(
            *cli_command("run"),
            env=env,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=new_session,
        )
