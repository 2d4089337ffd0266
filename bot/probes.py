"""What ``colabot check`` finds out by asking the services themselves: the Bot API server and
its mode, and who writes where in Google Drive. Each finding is one line; a problem says what
to change."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.request import HTTPXRequest

from bot.app import RedactingBot, bot_api_urls
from bot.config import Config
from bot.downloads import server_path
from bot.errors import ConfigError
from bot.limits import BOT_DOWNLOAD_MB, DOCUMENT_UPLOAD_MB
from workers.errors import ColabotError, ExecutorError, SpecError
from workers.executors.base import Executor
from workers.executors.local import run_briefly
from workers.safety.environment import step_environment
from workers.wandb.runs import installed as wandb_installed
from workers.wandb.runs import run_for, step_env


@dataclass(frozen=True)
class Finding:
    """One line of the check: a fact, or (``ok`` False) a problem."""

    ok: bool
    text: str


async def probe_telegram(config: Config) -> list[Finding]:
    """Reach the Bot API server with the token; tell which kind of server it is."""
    tg = config.telegram
    base_url, base_file_url = bot_api_urls(tg.api_url)
    bot = RedactingBot(
        tg.token,
        base_url=base_url,
        base_file_url=base_file_url,
        request=HTTPXRequest(connect_timeout=10.0, read_timeout=15.0),
    )
    try:
        await bot.initialize()
    except InvalidToken:
        return [
            Finding(
                False, "telegram.token: Telegram rejected the bot token: check it with @BotFather"
            )
        ]
    except (NetworkError, OSError) as exc:
        where = tg.api_url or "api.telegram.org"
        return [Finding(False, f"telegram.api_url: cannot reach the Bot API at {where} ({exc})")]
    try:
        findings = [
            Finding(
                True, f"telegram: bot @{bot.username} answers at {tg.api_url or 'api.telegram.org'}"
            )
        ]
        if not tg.api_url:
            findings.append(
                Finding(
                    True,
                    "Bot API server: Telegram's own (files from the chat up to "
                    f"{BOT_DOWNLOAD_MB} MB, files to the chat up to {DOCUMENT_UPLOAD_MB} MB)",
                )
            )
            return findings
        findings.append(await _local_mode(bot, config))
        return findings
    finally:
        await bot.shutdown()


async def _local_mode(bot: RedactingBot, config: Config) -> Finding:
    """Whether a self-hosted server runs with ``--local``: it then answers ``getFile`` with
    an absolute path. An allowed user's profile photo is the file asked about (read-only)."""
    tg = config.telegram
    local: bool | None = None
    for user in tg.allowed_users:
        try:
            photos = await bot.get_user_profile_photos(user, limit=1)
            if not photos.total_count:
                continue
            file = await bot.get_file(photos.photos[0][-1].file_id)
        except TelegramError:
            continue
        path = server_path(file.file_path or "", bot.base_file_url)
        local = PurePosixPath(path).is_absolute()
        break
    said = "on" if tg.local_mode else "off"
    if local is None:
        return Finding(
            True,
            "Bot API server: self-hosted; could not tell whether it runs with --local (no "
            f"allowed user has a profile photo to ask about); telegram.local_mode is {said}",
        )
    if local != tg.local_mode:
        actual = "runs with --local" if local else "runs without --local"
        return Finding(
            False,
            f"telegram.local_mode: the self-hosted Bot API server {actual}, but "
            f"telegram.local_mode is {said}: set it to {'true' if local else 'false'}",
        )
    if local:
        return Finding(
            True,
            "Bot API server: self-hosted, with --local (files of any size, copied from its disk"
            + (f" through {tg.local_files_dir}" if tg.local_files_dir else "")
            + ")",
        )
    return Finding(
        True,
        "Bot API server: self-hosted, without --local (it serves no file downloads: share "
        "its working folder as telegram.local_files_dir, or run it with --local)",
    )


def probe_results(config: Config) -> list[Finding]:
    """Open the results backend as colabot run would (Drive: sign in, write a probe file)."""
    from bot.results import open_results

    try:
        opened = open_results(config)
    except ConfigError as exc:
        return [Finding(False, str(exc))]
    except ColabotError as exc:
        return [Finding(False, f"results: {exc}")]
    findings = [Finding(True, f"results: {opened.description}")]
    if opened.note:
        findings.append(Finding(False, opened.note))
    return findings


async def probe_executor(config: Config) -> list[Finding]:
    """Reach the cluster jobs run on: its version, nodes, CPUs and GPUs, and whether its nodes
    see the data folder (and the results folder) through a probe job."""
    from bot.executor import build_executor, capacity_lines, check_executor, setting_for

    try:
        executor = build_executor(config)
    except ConfigError as exc:
        return [Finding(False, str(exc))]
    if executor is None:
        return []
    try:
        capacity = await check_executor(config, executor, probe=True)
        findings = [Finding(True, line) for line in capacity_lines(capacity)] if capacity else []
        findings.append(Finding(True, f"the cluster's nodes see the data folder {config.data_dir}"))
        if config.results.backend == "local":
            results = config.results.dir.expanduser()
            try:
                await check_shared(executor, results)
                findings.append(Finding(True, f"they see the results folder {results} too"))
            except ExecutorError:
                findings.append(
                    Finding(
                        True,
                        f"they do not see the results folder {results}; that is fine: colabot "
                        "copies results there itself",
                    )
                )
        return findings
    except ConfigError as exc:
        return [Finding(False, str(exc))]
    except ExecutorError as exc:
        return [Finding(False, f"{setting_for(config, exc.reason)}: {exc.reason}")]
    finally:
        await executor.close()


async def check_shared(executor: Executor, folder: Path) -> None:
    """Run the executor's shared-folder probe on ``folder`` (ExecutorError when not shared)."""
    probe = getattr(executor, "probe_shared", None)
    if probe is not None:
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        await probe(folder)


async def probe_wandb(config: Config) -> list[Finding]:
    """Whether W&B takes the key of online runs, asked as a job's first step asks it (in a
    process of its own, with the environment a job gets)."""
    settings = config.wandb
    if settings.default_mode != "online":
        return []
    try:
        run = run_for(settings, None, "colabot-check", available=wandb_installed())
    except SpecError as exc:
        return [Finding(False, f"W&B: {exc.message}")]
    assert run is not None
    env = step_environment(step_env(run, settings))
    argv = [sys.executable, "-m", "workers.wandb.login"]
    ended = await run_briefly(argv, env, timeout_s=60)
    where = settings.base_url or "wandb.ai"
    if ended.returncode == 0:
        return [Finding(True, f"W&B: {where} accepts the key; runs go to project {run.project}")]
    why = ended.lines[-1] if ended.lines else ended.reason
    return [Finding(False, f"W&B: {where} refused the key ({why}); online runs would log offline")]


async def probe_all(config: Config) -> list[Finding]:
    """Every probe the configuration calls for."""
    findings: list[Finding] = []
    if config.telegram.token:
        findings += await probe_telegram(config)
    findings += await asyncio.to_thread(probe_results, config)
    findings += await probe_executor(config)
    findings += await probe_wandb(config)
    return findings
