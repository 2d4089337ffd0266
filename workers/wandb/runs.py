"""Weights & Biases runs for training jobs: whether a job logs to W&B and how, the
environment its steps get, and the run page a step prints. Pure, except :func:`installed`.

The key reaches a job only as ``WANDB_API_KEY`` in its steps' environment, and only when the
run is online; every other ``WANDB_*`` variable of colabot's own environment is kept out.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from workers.errors import SpecError
from workers.safety.names import label, shown

MODES = ("online", "offline", "disabled")
PARAM = "wandb"
RUN_URL = re.compile(r"View run\b.*?(https?://\S+)")
OFFLINE_PREFIX = "offline-run-"
CLOUD_API_HOST = "api.wandb.ai"
CLOUD_PAGES = "https://wandb.ai"
"""Where wandb.ai's run pages are (its API, the default ``base_url``, is on another host)."""
MAX_URL_CHARS = 2000
# What a run page's address may hold: printable ASCII of RFC 3986, without the backslash,
# quotes, spaces and angle brackets that parsers (ours, a browser's) read differently.
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class WandbSettings:
    """``[wandb]``: Weights & Biases runs for training jobs (``/train ... wandb=yes|no``): the
    key, where runs go, and the mode. The loader in :mod:`bot.config` builds it and checks
    its values."""

    api_key: str = ""
    project: str = "colabot"
    entity: str = ""
    mode: str = ""
    """online, offline or disabled; unset: :attr:`default_mode`."""
    base_url: str = ""
    """A W&B server of one's own (W&B Server, a dedicated cloud); '' is wandb.ai."""

    @property
    def default_mode(self) -> str:
        """The mode of a job that does not say ``wandb=``."""
        return self.mode or ("online" if self.api_key else "disabled")


@dataclass(frozen=True)
class WandbRun:
    """How one job logs to W&B."""

    mode: str
    project: str
    entity: str
    name: str


def installed() -> bool:
    """Whether the wandb package can be imported by the jobs (it is not imported here)."""
    return importlib.util.find_spec("wandb") is not None


def run_for(
    settings: WandbSettings, asked: bool | None, name: str, *, available: bool
) -> WandbRun | None:
    """The W&B run of a job (None: no W&B), from the settings and its ``wandb=`` (None when
    not given); raise SpecError for what cannot work, before any GPU time is spent."""
    if asked is False:
        return None
    mode = settings.default_mode
    if asked and mode == "disabled":
        mode = "online" if settings.api_key else "offline"
    if mode == "disabled":
        return None
    if not available:
        raise SpecError(
            f"params.{PARAM}",
            "W&B logging needs the wandb package, which is not installed here "
            "(pip install wandb), or give wandb=no",
        )
    if mode == "online" and not settings.api_key:
        raise SpecError(
            f"params.{PARAM}",
            "W&B mode online needs an API key: set [wandb] api_key (or COLABOT_WANDB_API_KEY "
            'or WANDB_API_KEY), or set [wandb] mode = "offline", or give wandb=no',
        )
    return WandbRun(mode=mode, project=settings.project, entity=settings.entity, name=name)


def step_env(run: WandbRun | None, settings: WandbSettings) -> dict[str, str]:
    """The W&B variables of a job's steps (the key only for an online run)."""
    if run is None:
        return {"WANDB_MODE": "disabled"}
    env = {
        "WANDB_MODE": run.mode,
        "WANDB_PROJECT": run.project,
        "WANDB_NAME": run.name,
        "WANDB_SILENT": "false",
        "WANDB_CONSOLE": "off",
    }
    if run.entity:
        env["WANDB_ENTITY"] = run.entity
    if settings.base_url:
        env["WANDB_BASE_URL"] = settings.base_url
    if run.mode == "online":
        env["WANDB_API_KEY"] = settings.api_key
    return env


def run_url(line: str) -> str | None:
    """The run page in W&B's ``View run <name> at: <url>`` line, if this is that line."""
    if "View run" not in line:
        return None
    match = RUN_URL.search(line)
    return match.group(1).rstrip(".,;)") if match else None


def run_page(url: str, base_url: str = "") -> str | None:
    """``url`` when it is a page of the configured W&B server, the only link colabot shows as
    a run's page; None for anything else (a job's lines and messages are untrusted).

    ``base_url`` is ``[wandb] base_url``: '' or wandb.ai's API means wandb.ai's pages; a
    server of one's own means its own host and port. Pages are https only, unless the
    server itself is reached over http.
    """
    if len(url) > MAX_URL_CHARS or not _URL_CHARS.fullmatch(url):
        return None
    server = urlsplit(base_url.strip() or CLOUD_PAGES)
    if server.hostname == CLOUD_API_HOST and server.scheme == "https":
        server = urlsplit(CLOUD_PAGES)
    page = urlsplit(url)
    schemes = {"https", server.scheme} if server.scheme == "http" else {"https"}
    if server.scheme not in _DEFAULT_PORTS or page.scheme not in schemes:
        return None
    if not server.hostname or "@" in page.netloc or page.hostname != server.hostname:
        return None
    try:
        server_port, page_port = server.port, page.port
    except ValueError:  # a port that is not a number, or out of range
        return None
    wanted = server_port or _DEFAULT_PORTS[page.scheme]
    return url if (page_port or _DEFAULT_PORTS[page.scheme]) == wanted else None


def offline_runs(outputs: Path) -> list[Path]:
    """The offline run folders a job left among its outputs (a few levels deep at most)."""
    found: list[Path] = []
    for depth in ("", "*/", "*/*/", "*/*/*/", "*/*/*/*/"):
        found += [p for p in outputs.glob(f"{depth}{OFFLINE_PREFIX}*") if p.is_dir()]
    return sorted(set(found))


def sync_hint(runs: list[Path], outputs: Path) -> str:
    """What to run to upload offline runs later, with their paths inside the results (the
    command shell-quoted: a folder's name comes from the job)."""
    paths = [str(p.relative_to(outputs)) for p in runs]
    names = label(", ".join(paths), limit=400)
    return (
        f"W&B run kept offline with the results ({names}): upload it later with "
        f"`{shown(shlex.join(['wandb', 'sync', *paths]))}` from the downloaded "
        "results folder."
    )
