"""Typed settings from a TOML file plus ``COLABOT_<SECTION>_<KEY>`` environment overrides.

Validated once, at start: an unknown key, a wrong type or a missing required value stops
start-up with one line naming the key.

The sections the job side reads are built as the job side's own settings types (``[ray]``
and ``[slurm]``: :mod:`workers.executors.settings`; ``[inputs]``: ``FetchPolicy``;
``[wandb]``: ``WandbSettings``): their fields are the keys, their defaults the defaults.
The sections only the chat side reads are declared here.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from bot.access import AccessPolicy
from bot.errors import ConfigError
from bot.limits import BOT_DOWNLOAD_MB
from workers.drive.settings import DriveSettings
from workers.executors.settings import RaySettings, SlurmSettings
from workers.executors.slurm_commands import extra_arg_problem, parse_time_limit
from workers.inputs.netpolicy import FetchPolicy, is_loopback_url
from workers.sharing.quotas import QuotaSettings
from workers.wandb.runs import MODES as WANDB_MODES
from workers.wandb.runs import WandbSettings

TOKEN_SHAPE = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")
CONFIG_ENV = "COLABOT_CONFIG"
DEFAULT_CONFIG_NAME = "colabot.toml"


@dataclass(frozen=True)
class TelegramConfig:
    """How to reach Telegram and who may talk to the bot."""

    token: str = ""
    api_url: str = ""
    allowed_users: tuple[int, ...] = ()
    allowed_chats: tuple[int, ...] = ()
    max_download_mb: int = BOT_DOWNLOAD_MB
    local_mode: bool = False
    local_files_dir: Path | None = None
    start_jobs: bool = True
    """Whether /train and /infer from the chat start jobs (false: companion mode, where jobs
    start from the notebook and the chat follows them)."""
    admins: tuple[int, ...] = ()
    """Allowed users who may act on everyone's jobs and hear every runtime warning."""


@dataclass(frozen=True)
class WorkerConfig:
    """Where jobs keep their files and how many run at once."""

    data_dir: Path = Path("~/.colabot")
    executor: Literal["local", "ray", "slurm"] = "local"
    max_parallel_jobs: int = 1
    input_roots: tuple[Path, ...] = ()
    job_timeout_minutes: float = 0.0
    min_free_disk_mb: float = 500.0


@dataclass(frozen=True)
class ResultsConfig:
    """Where outputs, checkpoints and the state snapshot are kept off the machine."""

    backend: Literal["local", "drive"] = "local"
    dir: Path = Path("~/colabot-results")
    fallback: Literal["none", "local"] = "none"
    send_files_under_mb: float = 45.0
    checkpoint_sync_minutes: float = 15.0


@dataclass(frozen=True)
class RuntimeConfig:
    """The machine's lifetime limit and when to warn about it."""

    max_hours: float = 12.0
    start: str = ""
    warn_before_minutes: tuple[int, ...] = (60, 15, 5)
    idle_release_minutes: float = 0.0


@dataclass(frozen=True)
class HeartbeatConfig:
    """The keepalive message while jobs run."""

    interval_minutes: float = 30.0


@dataclass(frozen=True)
class Config:
    """Every setting colabot reads, validated."""

    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    results: ResultsConfig = field(default_factory=ResultsConfig)
    drive: DriveSettings = field(default_factory=DriveSettings)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    inputs: FetchPolicy = field(default_factory=FetchPolicy)
    ray: RaySettings = field(default_factory=RaySettings)
    slurm: SlurmSettings = field(default_factory=SlurmSettings)
    wandb: WandbSettings = field(default_factory=WandbSettings)
    quotas: QuotaSettings = field(default_factory=QuotaSettings)
    source: Path | None = None

    @property
    def offline(self) -> bool:
        """True when no token is set: colabot runs its own offline chat."""
        return not self.telegram.token

    @property
    def data_dir(self) -> Path:
        """The worker data folder, expanded."""
        return self.worker.data_dir.expanduser()

    def replace(self, **sections: Any) -> Config:
        """A copy with whole sections replaced."""
        return dataclasses.replace(self, **sections)


SECTIONS: dict[str, type[Any]] = {
    f.name: f.default_factory  # type: ignore[misc]
    for f in dataclasses.fields(Config)
    if f.name != "source"
}


def access_policy(config: Config) -> AccessPolicy:
    """Who may use the bot, and in which group chats."""
    tg = config.telegram
    return AccessPolicy(
        frozenset(tg.allowed_users), frozenset(tg.allowed_chats), frozenset(tg.admins)
    )


def quota_exempt(config: Config) -> frozenset[int]:
    """The users quotas do not bind: the admins, when ``quotas.admins_exempt``."""
    return frozenset(config.telegram.admins) if config.quotas.admins_exempt else frozenset()


def mask_token(token: str) -> str:
    """Show a token's bot id but never its secret part."""
    if not token:
        return "(none: offline chat)"
    bot_id = token.split(":", 1)[0]
    return f"{bot_id}:****" if bot_id.isdigit() else "****"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0])}s"
    if origin in (types.UnionType, typing.Union):
        return _type_name(next(a for a in typing.get_args(tp) if a is not type(None)))
    return {
        str: "a string",
        int: "a whole number",
        float: "a number",
        bool: "true or false",
        Path: "a path",
    }.get(tp, str(tp))


def _coerce(key: str, tp: Any, value: Any) -> Any:
    """Check ``value`` against the annotation ``tp``; raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    wrong = ConfigError(key, f"must be {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise wrong
        return value
    if origin in (types.UnionType, typing.Union):
        if value is None or value == "":
            return None
        inner = next(a for a in typing.get_args(tp) if a is not type(None))
        return _coerce(key, inner, value)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise wrong
        inner = typing.get_args(tp)[0]
        return tuple(_coerce(f"{key}[{i}]", inner, item) for i, item in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise wrong
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise wrong
        return value
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise wrong
        return Path(value)
    raise wrong


def _from_env_text(key: str, tp: Any, text: str) -> Any:
    """Parse an environment variable's text as TOML would have typed it."""
    origin = typing.get_origin(tp)
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        items = [t.strip() for t in text.split(",") if t.strip()]
        return [_from_env_text(key, inner, item) for item in items]
    if origin in (types.UnionType, typing.Union):
        inner = next(a for a in typing.get_args(tp) if a is not type(None))
        return _from_env_text(key, inner, text)
    if tp is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(key, f"must be true or false, got {text!r}")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(key, f"must be a whole number, got {text!r}") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(key, f"must be a number, got {text!r}") from None
    return text


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, tuple[str, Any]]]:
    """``COLABOT_<SECTION>_<KEY>`` values, typed, with the variable name for errors."""
    found: dict[str, dict[str, tuple[str, Any]]] = {}
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            var = f"COLABOT_{section}_{f.name}".upper()
            if var in environ:
                label = f"{var} ({section}.{f.name})"
                value = _from_env_text(label, hints[f.name], environ[var])
                found.setdefault(section, {})[f.name] = (label, value)
    return found


def _build_section(section: str, raw: Any, overrides: dict[str, tuple[str, Any]]) -> Any:
    cls = SECTIONS[section]
    if not isinstance(raw, dict):
        raise ConfigError(section, f"must be a table ([{section}]), got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in names:
            raise ConfigError(
                f"{section}.{key}", f"unknown setting (known: {', '.join(sorted(names))})"
            )
        values[key] = _coerce(f"{section}.{key}", hints[key], value)
    for key, (label, value) in overrides.items():
        values[key] = _coerce(label, hints[key], value)
    return cls(**values)


def parse_config(
    data: Mapping[str, Any], environ: Mapping[str, str], source: Path | None = None
) -> Config:
    """Build and validate a Config from parsed TOML data and the environment."""
    for section in data:
        if section not in SECTIONS:
            raise ConfigError(section, f"unknown section (known: {', '.join(sorted(SECTIONS))})")
    overrides = _env_overrides(environ)
    raw_wandb: Any = data.get("wandb")
    wandb_table: Mapping[str, Any] = raw_wandb if isinstance(raw_wandb, Mapping) else {}
    if (
        environ.get("WANDB_API_KEY")
        and "api_key" not in overrides.get("wandb", {})
        and not wandb_table.get("api_key")
    ):
        # W&B's own variable, as its tools read it; colabot's and the file's come first.
        overrides.setdefault("wandb", {})["api_key"] = (
            "WANDB_API_KEY (wandb.api_key)",
            environ["WANDB_API_KEY"],
        )
    built = {
        name: _build_section(name, data.get(name, {}), overrides.get(name, {})) for name in SECTIONS
    }
    config = _with_ray_token(Config(**built, source=source), environ)
    validate(config)
    return config


def validate(config: Config) -> None:
    """Checks that involve values rather than types."""
    _validate_wandb(config.wandb)
    tg = config.telegram
    if tg.token and tg.token != tg.token.strip():
        raise ConfigError("telegram.token", "has spaces or a line break around it; remove them")
    if tg.token and not TOKEN_SHAPE.fullmatch(tg.token):
        raise ConfigError("telegram.token", "does not look like a bot token (123456:ABC-...)")
    if tg.token and not tg.allowed_users:
        raise ConfigError(
            "telegram.allowed_users",
            "required when telegram.token is set (a list of Telegram user ids)",
        )
    for admin in tg.admins:
        if admin not in tg.allowed_users:
            raise ConfigError(
                "telegram.admins",
                f"{admin} is not in telegram.allowed_users: an admin must be an allowed user",
            )
    _not_negative("quotas.running_per_user", config.quotas.running_per_user)
    if config.quotas.gpu_hours_per_user_per_week is not None:
        _not_negative(
            "quotas.gpu_hours_per_user_per_week", config.quotas.gpu_hours_per_user_per_week
        )
    if tg.api_url and not re.match(r"^https?://[^/\s]+", tg.api_url):
        raise ConfigError("telegram.api_url", f"must be an http(s) URL, got {tg.api_url!r}")
    for chat in tg.allowed_chats:
        if chat > 0:
            raise ConfigError(
                "telegram.allowed_chats",
                f"{chat} is a person's id: list people in telegram.allowed_users, and group "
                "chats (their ids are negative) here",
            )
    _positive("telegram.max_download_mb", tg.max_download_mb)
    if tg.max_download_mb > BOT_DOWNLOAD_MB and not tg.local_mode:
        raise ConfigError(
            "telegram.max_download_mb",
            f"{tg.max_download_mb} MB needs a self-hosted Bot API server started with "
            "--local (telegram.local_mode = true); Telegram lets bots download at most "
            f"{BOT_DOWNLOAD_MB} MB",
        )
    if tg.local_mode and not tg.api_url:
        raise ConfigError(
            "telegram.local_mode",
            "needs telegram.api_url: only a self-hosted telegram-bot-api runs with --local",
        )
    _positive("worker.max_parallel_jobs", config.worker.max_parallel_jobs)
    _not_negative("worker.job_timeout_minutes", config.worker.job_timeout_minutes)
    _not_negative("worker.min_free_disk_mb", config.worker.min_free_disk_mb)
    _not_negative("results.send_files_under_mb", config.results.send_files_under_mb)
    _not_negative("results.checkpoint_sync_minutes", config.results.checkpoint_sync_minutes)
    _positive("runtime.max_hours", config.runtime.max_hours)
    for minutes in config.runtime.warn_before_minutes:
        _positive("runtime.warn_before_minutes", minutes)
        if minutes >= config.runtime.max_hours * 60:
            raise ConfigError(
                "runtime.warn_before_minutes",
                f"{minutes} minutes is not less than runtime.max_hours",
            )
    if config.runtime.start:
        try:
            datetime.fromisoformat(config.runtime.start)
        except ValueError:
            raise ConfigError(
                "runtime.start", f"must be an ISO date-time, got {config.runtime.start!r}"
            ) from None
    _not_negative("runtime.idle_release_minutes", config.runtime.idle_release_minutes)
    _not_negative("heartbeat.interval_minutes", config.heartbeat.interval_minutes)
    _positive("inputs.max_download_mb", config.inputs.max_download_mb)
    _positive("inputs.timeout_seconds", config.inputs.timeout_seconds)
    for index, network in enumerate(config.inputs.allowed_networks):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(
                f"inputs.allowed_networks[{index}]",
                f"must be an address or a network such as 10.20.0.0/16, got {network!r}",
            ) from None
    _positive("drive.chunk_mb", config.drive.chunk_mb)
    if config.worker.executor == "ray":
        _check_ray(config.ray)
    _check_slurm(config.slurm)
    if config.results.backend == "drive":
        if not config.drive.folder_id:
            raise ConfigError(
                "drive.folder_id", 'required when results.backend is "drive" (a folder id)'
            )
        _check_drive_credentials(config.drive)


def _check_ray(ray: RaySettings) -> None:
    if not ray.address:
        raise ConfigError(
            "ray.address",
            'required when worker.executor is "ray": the Jobs API (dashboard) URL, such as '
            "http://10.0.0.5:8265",
        )
    if not re.match(r"^https?://[^/\s]+", ray.address):
        raise ConfigError("ray.address", f"must be an http(s) URL, got {ray.address!r}")
    if ray.token != ray.token.strip():
        raise ConfigError("ray.token", "has spaces or a line break around it; remove them")
    problem = ray_auth_problem(ray)
    if problem is not None:
        raise ConfigError("ray.token", problem)
    _not_negative("ray.gpus_per_job", ray.gpus_per_job)
    _positive("ray.cpus_per_job", ray.cpus_per_job)


def ray_auth_problem(ray: RaySettings) -> str | None:
    """Why colabot may not use this Ray cluster without a token (None: it may).

    Without token auth, whoever reaches the Jobs API runs code on the cluster as its user;
    every local user of a machine reaches its loopback address, so a cluster on 127.0.0.1
    needs a token too, unless ``ray.allow_unauthenticated`` says otherwise.
    """
    if ray.token or ray.allow_unauthenticated:
        return None
    where = (
        f"even on this machine ({ray.address}): every local user reaches it there"
        if is_loopback_url(ray.address)
        else f"for a Ray cluster that is not on this machine ({ray.address})"
    )
    return (
        f"required {where}, and without token auth anyone who reaches it can run code there. "
        "Start the cluster with RAY_AUTH_MODE=token and set ray.token (or COLABOT_RAY_TOKEN, "
        "RAY_AUTH_TOKEN or ~/.ray/auth_token); or, where only you can reach it, set "
        "ray.allow_unauthenticated = true"
    )


def ray_token_found(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """A Ray token where Ray's own tools look for one (``RAY_AUTH_TOKEN``, the file
    ``RAY_AUTH_TOKEN_PATH`` names, ``~/.ray/auth_token``), with where it was found; for a
    ``[ray]`` without ``token``."""
    if environ.get("RAY_AUTH_TOKEN", "").strip():
        return environ["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN"
    files = [environ.get("RAY_AUTH_TOKEN_PATH", "")]
    if environ.get("HOME"):
        files.append(str(Path(environ["HOME"]) / ".ray" / "auth_token"))
    for name in filter(None, files):
        try:
            text = Path(name).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if text:
            return text, name
    return None


def _with_ray_token(config: Config, environ: Mapping[str, str]) -> Config:
    """The config with Ray's own token when ``[ray]`` has none and jobs run on Ray."""
    if config.worker.executor != "ray" or config.ray.token:
        return config
    found = ray_token_found(environ)
    if found is None:
        return config
    return config.replace(ray=dataclasses.replace(config.ray, token=found[0]))


def _check_drive_credentials(drive: DriveSettings) -> None:
    if drive.auth == "service_account":
        path = drive.service_account_file
        if path is None:
            raise ConfigError(
                "drive.service_account_file", 'required when drive.auth is "service_account"'
            )
        if not path.expanduser().is_file():
            raise ConfigError("drive.service_account_file", f"no such file: {path}")
    if drive.auth == "oauth_token_file":
        path = drive.token_file
        if path is None:
            raise ConfigError("drive.token_file", 'required when drive.auth is "oauth_token_file"')
        if not path.expanduser().is_file():
            raise ConfigError("drive.token_file", f"no such file: {path}")


def _check_slurm(slurm: SlurmSettings) -> None:
    for key, value in (("partition", slurm.partition), ("account", slurm.account)):
        if not re.fullmatch(r"[\w.+-]*", value):
            raise ConfigError(f"slurm.{key}", f"is not a Slurm {key} name: {value!r}")
    if not re.fullmatch(r"([\w.-]+(:[\w.-]+)*(,[\w.-]+(:[\w.-]+)*)*)?", slurm.gres):
        raise ConfigError(
            "slurm.gres", f'must look like "gpu:1" or "gpu:a100:2", got {slurm.gres!r}'
        )
    if not re.fullmatch(r"\d+[KMGT]?", slurm.mem, flags=re.IGNORECASE):
        raise ConfigError("slurm.mem", f'must be a size such as "16G" or "500M", got {slurm.mem!r}')
    try:
        parse_time_limit(slurm.time_limit)
    except ValueError:
        raise ConfigError(
            "slurm.time_limit",
            'must be a Slurm time such as "12:00:00", "90" (minutes) or "1-12:00:00", got '
            f"{slurm.time_limit!r}",
        ) from None
    _positive("slurm.cpus_per_task", slurm.cpus_per_task)
    _positive("slurm.poll_seconds", slurm.poll_seconds)
    for index, arg in enumerate(slurm.extra_args):
        why = extra_arg_problem(arg)
        if why is not None:
            raise ConfigError(f"slurm.extra_args[{index}]", why)


def _validate_wandb(wandb: WandbSettings) -> None:
    if wandb.mode and wandb.mode not in WANDB_MODES:
        raise ConfigError(
            "wandb.mode", f"must be one of {', '.join(WANDB_MODES)}, got {wandb.mode!r}"
        )
    if wandb.api_key != wandb.api_key.strip():
        raise ConfigError("wandb.api_key", "has spaces or a line break around it; remove them")
    if not re.fullmatch(r"[\w.-]*", wandb.entity) or not re.fullmatch(r"[\w.-]+", wandb.project):
        raise ConfigError("wandb", "project and entity are W&B names (letters, digits, - _ .)")
    if wandb.base_url and not re.match(r"^https?://[^/\s]+", wandb.base_url):
        raise ConfigError("wandb.base_url", f"must be an http(s) URL, got {wandb.base_url!r}")


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(key, f"must be greater than 0, got {value!r}")


def _not_negative(key: str, value: float) -> None:
    if value < 0:
        raise ConfigError(key, f"must not be negative, got {value!r}")


def find_config_file(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    """The config file to read: ``--config``, then $COLABOT_CONFIG, then ./colabot.toml."""
    if explicit is not None:
        return explicit
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.is_file() else None


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, type and validate the configuration; raise ConfigError with one clear line."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.expanduser().read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(str(path), "no such config file") from None
        except OSError as exc:
            raise ConfigError(str(path), f"cannot be read: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(str(path), "is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), f"is not valid TOML: {exc}") from None
    return parse_config(data, environ, source=path)


def executor_line(config: Config) -> str:
    """Where jobs run, in a few words (the Ray token masked)."""
    if config.worker.executor == "ray":
        ray = config.ray
        auth = "token ****" if ray.token else "no token"
        return f"Ray cluster at {ray.address} ({auth})"
    if config.worker.executor == "slurm":
        slurm = config.slurm
        partition = slurm.partition or "the default partition"
        return f"Slurm, {partition} (time limit {slurm.time_limit} per step)"
    return config.worker.executor if config.worker.executor != "local" else "this machine"


def wandb_line(wandb: WandbSettings) -> str:
    """The W&B settings in a few words, the key masked."""
    key = "key ****" if wandb.api_key else "no key"
    mode = wandb.default_mode
    if mode == "disabled":
        return f"off unless a job asks (wandb=yes runs offline; {key})"
    where = f"{wandb.entity}/{wandb.project}" if wandb.entity else wandb.project
    return f"{mode}, project {where} ({key})"


def quota_line(quotas: QuotaSettings) -> str:
    """``[quotas]`` in words."""
    parts = []
    if quotas.running_per_user:
        parts.append(f"{quotas.running_per_user} running per person")
    if quotas.gpu_hours_per_user_per_week is not None:
        parts.append(f"{quotas.gpu_hours_per_user_per_week:g} GPU-hours per person per week")
    if parts and quotas.admins_exempt:
        parts.append("admins exempt")
    return ", ".join(parts) or "none (fair share only: fewest running jobs first)"


def summary_lines(config: Config) -> list[str]:
    """A readable summary of the settings, token masked."""
    tg = config.telegram
    users = ", ".join(str(u) for u in tg.allowed_users) or "(none)"
    roots = ", ".join(str(r) for r in config.worker.input_roots) or "(none: uploads and URLs only)"
    lines = [
        f"config file:        {config.source or '(none: defaults)'}",
        f"telegram token:     {mask_token(tg.token)}",
        f"bot API:            {tg.api_url or 'https://api.telegram.org (Telegram)'}",
        f"allowed users:      {users}",
        "allowed groups:     "
        + (", ".join(str(c) for c in tg.allowed_chats) or "(none: private chats only)"),
        f"admins:             {', '.join(str(a) for a in tg.admins) or '(none)'}",
        "jobs from the chat: "
        + ("yes" if tg.start_jobs else "no (companion mode: jobs start from the notebook)"),
        f"quotas:             {quota_line(config.quotas)}",
        f"data dir:           {config.worker.data_dir}",
        f"parallel jobs:      {config.worker.max_parallel_jobs}",
        f"executor:           {executor_line(config)}",
        f"input roots:        {roots}",
        f"results:            {config.results.backend} -> "
        + (
            str(config.results.dir)
            if config.results.backend == "local"
            else f"Drive folder {config.drive.folder_id}"
        ),
        f"runtime limit:      {config.runtime.max_hours:g} h, warnings "
        + ", ".join(f"{m} min" for m in config.runtime.warn_before_minutes)
        + " before",
        f"W&B:                {wandb_line(config.wandb)}",
        "heartbeat:          "
        + (
            f"every {config.heartbeat.interval_minutes:g} min"
            if config.heartbeat.interval_minutes
            else "off"
        ),
    ]
    return lines
