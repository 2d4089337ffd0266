"""The ``colabot`` command: ``run`` the bot, ``check`` a configuration."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from bot.config import Config, find_config_file, load_config, summary_lines
from bot.errors import ConfigError
from workers.safety.redaction import redact, register_secret

DESCRIPTION = """\
colabot runs SLEAP and spaCy jobs beside a GPU and talks to you on Telegram: start training
and inference from a phone, watch progress, get warned before the runtime is taken away, and
find results and checkpoints already copied off the machine.

With no token configured, `colabot run` starts an offline chat in this terminal.
Configuration reference: config.example.toml (every key, with its meaning and default).
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one sub-command per action."""
    parser = argparse.ArgumentParser(
        prog="colabot",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"colabot {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="start the bot (offline terminal chat when no token is set)",
        description="Start the bot, the job engine and the heartbeat. Ctrl-C stops them; "
        "running jobs are marked interrupted and can be resumed with /resume.",
    )
    check = sub.add_parser(
        "check",
        help="validate a configuration file and print a summary",
        description="Validate a configuration (file plus COLABOT_* environment variables) "
        "and print a summary with the token masked. Exits 0 when valid, 1 otherwise.",
    )
    check.add_argument(
        "--offline",
        action="store_true",
        help="only validate the file; do not contact Telegram, Drive or a cluster",
    )
    for command in (run, check):
        command.add_argument(
            "--config",
            type=Path,
            metavar="FILE",
            help="the TOML configuration (default: $COLABOT_CONFIG, then ./colabot.toml, "
            "then built-in defaults)",
        )
    run.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("colabot")
    except PackageNotFoundError:
        return "unknown"


def _load(path: Path | None) -> Config:
    config = load_config(find_config_file(path, os.environ))
    register_secrets(config)
    return config


def register_secrets(config: Config) -> None:
    """Tell the redactor the secrets the configuration holds (the bot token and its secret
    part, the W&B key, the Ray token): whatever colabot prints, logs, stores or sends masks
    them from now on."""
    token = config.telegram.token
    register_secret(token, token.partition(":")[2], config.wandb.api_key, config.ray.token)


def say(line: str, *, error: bool = False) -> None:
    """Print one line of colabot's own output (to stderr when ``error``), secrets masked:
    every line ``colabot check`` and ``colabot run`` print goes through here."""
    print(redact(line), file=sys.stderr if error else sys.stdout)


def check(path: Path | None, *, offline: bool = False) -> int:
    """Validate and summarise, then ask the services (unless ``offline``); 0 when all is
    well, 1 otherwise."""
    from bot.runtime import setup_hints

    try:
        config = _load(path)
    except ConfigError as exc:
        say(f"config error: {exc}", error=True)
        return 1
    say("configuration is valid")
    for line in summary_lines(config):
        say(f"  {line}")
    for hint in setup_hints(config):
        say(f"note: {hint}")
    if offline:
        return 0
    import asyncio

    from bot.logs import setup_logging
    from bot.probes import probe_all

    setup_logging(quiet_console=True)
    findings = asyncio.run(probe_all(config))
    for finding in findings:
        say(("ok: " if finding.ok else "problem: ") + finding.text)
    return 0 if all(finding.ok for finding in findings) else 1


def run(path: Path | None, verbose: bool) -> int:
    """Start colabot until interrupted."""
    try:
        config = _load(path)
    except ConfigError as exc:
        say(f"config error: {exc}", error=True)
        return 1
    from bot.logs import setup_logging
    from bot.service import run_until_interrupted

    setup_logging(verbose=verbose, quiet_console=config.offline)
    return run_until_interrupted(config)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``colabot`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(args.config, offline=args.offline)
    if args.command == "run":
        return run(args.config, args.verbose)
    parser.print_help()
    return 2


if __name__ == "__main__":
    logging.captureWarnings(True)
    sys.exit(main())
