"""Configuration: typing, validation, environment overrides, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import (
    Config,
    find_config_file,
    load_config,
    mask_token,
    parse_config,
    summary_lines,
)
from bot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456:AAbbCCddEEffGGhhIIjjKKllMMnn"


def test_the_example_config_is_valid() -> None:
    config = load_config(ROOT / "config.example.toml", environ={})
    assert config.telegram.allowed_users == (123456789,)
    assert config.results.backend == "local"
    assert config.runtime.warn_before_minutes == (60, 15, 5)
    assert config.offline


def test_defaults_need_no_file() -> None:
    config = load_config(None, environ={})
    assert config == Config()
    assert config.worker.max_parallel_jobs == 1 and config.heartbeat.interval_minutes == 30


@pytest.mark.parametrize(
    ("data", "key", "problem"),
    [
        ({"telegram": {"tokn": "x"}}, "telegram.tokn", "unknown setting"),
        ({"telgram": {}}, "telgram", "unknown section"),
        (
            {"worker": {"max_parallel_jobs": "2"}},
            "worker.max_parallel_jobs",
            "must be a whole number, got '2'",
        ),
        ({"worker": {"max_parallel_jobs": 0}}, "worker.max_parallel_jobs", "greater than 0"),
        (
            {"telegram": {"allowed_users": [1, "two"]}},
            "telegram.allowed_users[1]",
            "must be a whole number",
        ),
        (
            {"telegram": {"allowed_users": 5}},
            "telegram.allowed_users",
            "must be a list of a whole numbers",
        ),
        ({"results": {"backend": "s3"}}, "results.backend", "must be one of 'local', 'drive'"),
        (
            {"heartbeat": {"interval_minutes": True}},
            "heartbeat.interval_minutes",
            "must be a number",
        ),
        ({"telegram": {"token": TOKEN}}, "telegram.allowed_users", "required when"),
        (
            {"telegram": {"token": "not-a-token", "allowed_users": [1]}},
            "telegram.token",
            "does not look like a bot token",
        ),
        ({"telegram": {"api_url": "ftp://x"}}, "telegram.api_url", "must be an http(s) URL"),
        (
            {"runtime": {"warn_before_minutes": [60, 800]}},
            "runtime.warn_before_minutes",
            "not less than runtime.max_hours",
        ),
        ({"runtime": {"start": "yesterday"}}, "runtime.start", "ISO date-time"),
        ({"worker": {"executor": "spark"}}, "worker.executor", "must be one of 'local'"),
        ({"worker": {"executor": "ray"}}, "ray.address", "required when"),
        (
            {"worker": {"executor": "ray"}, "ray": {"address": "10.0.0.5:8265"}},
            "ray.address",
            "must be an http(s) URL",
        ),
        (
            {"worker": {"executor": "ray"}, "ray": {"address": "http://10.0.0.5:8265"}},
            "ray.token",
            "anyone who reaches it can run code there",
        ),
        (
            # A name that resolves to 127.0.0.1 today is a name someone else may change.
            {"worker": {"executor": "ray"}, "ray": {"address": "http://127.0.0.1.nip.io:8265"}},
            "ray.token",
            "required for a Ray cluster that is not on this machine",
        ),
        (
            {"worker": {"executor": "ray"}, "ray": {"address": "http://h:1", "token": " t"}},
            "ray.token",
            "spaces",
        ),
        (
            {
                "worker": {"executor": "ray"},
                "ray": {"address": "http://127.0.0.1:8265", "token": "t", "gpus_per_job": -1},
            },
            "ray.gpus_per_job",
            "must not be negative",
        ),
        ({"slurm": {"time_limit": "12h"}}, "slurm.time_limit", "must be a Slurm time"),
        ({"slurm": {"mem": "lots"}}, "slurm.mem", 'must be a size such as "16G"'),
        ({"slurm": {"gres": "gpu:1; rm -rf ~"}}, "slurm.gres", 'must look like "gpu:1"'),
        ({"slurm": {"partition": "gpu --wrap=x"}}, "slurm.partition", "is not a Slurm"),
        ({"slurm": {"cpus_per_task": 0}}, "slurm.cpus_per_task", "must be greater than 0"),
        ({"drive": {"chunk_mb": 0}}, "drive.chunk_mb", "must be greater than 0"),
        (
            {"slurm": {"extra_args": ["--qos=high", "--output=/tmp/x"]}},
            "slurm.extra_args[1]",
            "may not be given: colabot sets the step's log file itself",
        ),
        ({"slurm": {"extra_args": ["--wrap", "x"]}}, "slurm.extra_args[0]", "may not be given"),
        ({"slurm": {"extra_args": ["qos=high"]}}, "slurm.extra_args[0]", "an sbatch option"),
        ({"results": {"backend": "drive"}}, "drive.folder_id", "required when"),
        (
            {"results": {"backend": "drive"}, "drive": {"folder_id": "abc"}},
            "drive.service_account_file",
            "required when",
        ),
        (
            {
                "results": {"backend": "drive"},
                "drive": {"folder_id": "abc", "service_account_file": "/no/such.json"},
            },
            "drive.service_account_file",
            "no such file",
        ),
        ({"worker": []}, "worker", "must be a table"),
        ({"wandb": {"mode": "sometimes"}}, "wandb.mode", "must be one of online, offline"),
        ({"wandb": {"api_key": " abc "}}, "wandb.api_key", "has spaces or a line break"),
        ({"wandb": {"project": "my project"}}, "wandb", "are W&B names"),
        ({"wandb": {"base_url": "wandb.lab"}}, "wandb.base_url", "must be an http(s) URL"),
        (
            {"telegram": {"allowed_users": [1, 2], "admins": [3]}},
            "telegram.admins",
            "3 is not in telegram.allowed_users",
        ),
        ({"quotas": {"running_per_user": -1}}, "quotas.running_per_user", "must not be negative"),
        (
            {"quotas": {"gpu_hours_per_user_per_week": "ten"}},
            "quotas.gpu_hours_per_user_per_week",
            "must be a number",
        ),
        (
            {"quotas": {"gpu_hours_per_user_per_week": -2.5}},
            "quotas.gpu_hours_per_user_per_week",
            "must not be negative",
        ),
    ],
)
def test_errors_name_the_key(data: dict[str, object], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, {})
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert "\n" not in str(caught.value)


def test_environment_overrides_the_file() -> None:
    env = {
        "COLABOT_TELEGRAM_TOKEN": TOKEN,
        "COLABOT_TELEGRAM_ALLOWED_USERS": "11, 22",
        "COLABOT_WORKER_MAX_PARALLEL_JOBS": "3",
        "COLABOT_DRIVE_SHARE_ANYONE": "yes",
        "COLABOT_WORKER_INPUT_ROOTS": "/a,/b",
    }
    config = parse_config({"worker": {"max_parallel_jobs": 1}}, env)
    assert config.telegram.token == TOKEN and not config.offline
    assert config.telegram.allowed_users == (11, 22)
    assert config.worker.max_parallel_jobs == 3
    assert config.drive.share_anyone is True
    assert config.worker.input_roots == (Path("/a"), Path("/b"))


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({}, {"COLABOT_WORKER_MAX_PARALLEL_JOBS": "lots"})
    assert caught.value.key == "COLABOT_WORKER_MAX_PARALLEL_JOBS (worker.max_parallel_jobs)"


def test_file_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[telegram\ntoken = 1")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(bad, {})
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml", {})


def test_token_is_masked() -> None:
    assert mask_token(TOKEN) == "123456:****"
    assert TOKEN.split(":")[1] not in mask_token(TOKEN)
    assert mask_token("") == "(none: offline chat)"


def test_config_file_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = tmp_path / "x.toml"
    assert find_config_file(explicit, {"COLABOT_CONFIG": "/y.toml"}) == explicit
    assert find_config_file(None, {"COLABOT_CONFIG": "/y.toml"}) == Path("/y.toml")
    monkeypatch.chdir(tmp_path)
    assert find_config_file(None, {}) is None
    (tmp_path / "colabot.toml").write_text("")
    assert find_config_file(None, {}) == Path("colabot.toml")


@pytest.mark.parametrize(
    "ray",
    [
        # Loopback is no trust boundary (tests/hostile/test_clusters.py): a token, or consent.
        {"address": "http://127.0.0.1:8265", "token": "s3cret-token"},
        {"address": "http://localhost:8265", "allow_unauthenticated": True},
        {"address": "http://[::1]:8265", "allow_unauthenticated": True},
        {"address": "http://2130706433:8265", "token": "s3cret-token"},
        {"address": "http://10.0.0.5:8265", "allow_unauthenticated": True},
        {"address": "https://ray.lab.example:8265", "token": "s3cret-token"},
    ],
)
def test_a_ray_cluster_needs_a_token_or_allow_unauthenticated(ray: dict[str, object]) -> None:
    config = parse_config({"worker": {"executor": "ray"}, "ray": ray}, environ={})
    assert config.worker.executor == "ray"
    lines = "\n".join(summary_lines(config))
    assert "Ray cluster at" in lines and "s3cret-token" not in lines


def test_the_ray_token_can_come_from_the_environment() -> None:
    environ = {"COLABOT_RAY_TOKEN": "from-env", "COLABOT_WORKER_EXECUTOR": "ray"}
    config = parse_config({"ray": {"address": "http://10.0.0.5:8265"}}, environ=environ)
    assert config.ray.token == "from-env"


def test_slurm_settings_have_working_defaults_and_come_from_the_environment() -> None:
    environ = {
        "COLABOT_WORKER_EXECUTOR": "slurm",
        "COLABOT_SLURM_EXTRA_ARGS": "--qos=short,--constraint=a100",
        "COLABOT_SLURM_TIME_LIMIT": "1-00:00:00",
    }
    config = parse_config({"slurm": {"partition": "gpu"}}, environ=environ)
    slurm = config.slurm
    assert (slurm.partition, slurm.gres, slurm.cpus_per_task, slurm.mem) == (
        "gpu",
        "gpu:1",
        2,
        "16G",
    )
    assert slurm.extra_args == ("--qos=short", "--constraint=a100")
    assert slurm.time_limit == "1-00:00:00" and slurm.poll_seconds == 10
    assert "Slurm, gpu (time limit 1-00:00:00 per step)" in "\n".join(summary_lines(config))


def test_the_wandb_key_comes_from_the_file_colabot_or_wandb_and_is_masked() -> None:
    assert parse_config({}, {}).wandb.api_key == ""
    assert parse_config({}, {"WANDB_API_KEY": "from-wandb"}).wandb.api_key == "from-wandb"
    both = {"WANDB_API_KEY": "from-wandb", "COLABOT_WANDB_API_KEY": "from-colabot"}
    assert parse_config({}, both).wandb.api_key == "from-colabot"
    config = parse_config({"wandb": {"api_key": "from-file"}}, {"WANDB_API_KEY": "from-wandb"})
    assert config.wandb.api_key == "from-file"
    lines = "\n".join(summary_lines(config))
    assert "W&B:                online, project colabot (key ****)" in lines
    assert "from-file" not in lines
    off = "\n".join(summary_lines(parse_config({}, {})))
    assert "off unless a job asks (wandb=yes runs offline; no key)" in off


def test_start_jobs_is_on_unless_turned_off_and_a_bad_value_is_one_clear_line() -> None:
    assert parse_config({}, {}).telegram.start_jobs is True
    assert parse_config({"telegram": {"start_jobs": False}}, {}).telegram.start_jobs is False
    for text, expected in (("false", False), ("no", False), ("0", False), ("TRUE", True)):
        environ = {"COLABOT_TELEGRAM_START_JOBS": text}
        assert parse_config({}, environ).telegram.start_jobs is expected
    with pytest.raises(ConfigError) as in_file:
        parse_config({"telegram": {"start_jobs": "no"}}, {})
    assert str(in_file.value) == "telegram.start_jobs: must be true or false, got 'no'"
    with pytest.raises(ConfigError) as in_env:
        parse_config({}, {"COLABOT_TELEGRAM_START_JOBS": "sometimes"})
    assert str(in_env.value) == (
        "COLABOT_TELEGRAM_START_JOBS (telegram.start_jobs): must be true or false, got 'sometimes'"
    )


def test_admins_quotas_and_companion_mode_are_summarised_and_come_from_the_environment() -> None:
    env = {
        "COLABOT_TELEGRAM_ALLOWED_USERS": "1,2",
        "COLABOT_TELEGRAM_ADMINS": "2",
        "COLABOT_TELEGRAM_START_JOBS": "false",
        "COLABOT_QUOTAS_RUNNING_PER_USER": "2",
        "COLABOT_QUOTAS_GPU_HOURS_PER_USER_PER_WEEK": "12.5",
        "COLABOT_QUOTAS_ADMINS_EXEMPT": "true",
    }
    config = load_config(None, environ=env)
    assert config.telegram.admins == (2,) and config.quotas.gpu_hours_per_user_per_week == 12.5
    lines = "\n".join(summary_lines(config))
    assert "admins:             2" in lines
    assert "jobs from the chat: no (companion mode" in lines
    assert "2 running per person, 12.5 GPU-hours per person per week, admins exempt" in lines
    plain = "\n".join(summary_lines(load_config(None, environ={})))
    assert "quotas:             none (fair share only" in plain
