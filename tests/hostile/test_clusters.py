"""The cluster executors as an attacker reads them, on the real one-machine Slurm cluster and
the real Ray head.

- Slurm: a step name and a data path with newlines never become lines of the batch script
  (nothing of the step is in its text but an escaped label); no secret of colabot's (the bot
  token, the W&B key, a Ray token) is in any job's saved environment, the shared-folder
  probe's included, while an online run's W&B key still reaches its step; the probe started
  in a planted folder runs none of it; ``slurm.extra_args`` is an allow-list.
- Ray: the W&B key never travels in ``runtime_env`` (the Jobs API shows it to any token
  holder) but reaches the step; a stored submission is followed only when its metadata is
  this colabot's job, attempt and step; a cluster without a token is refused even on
  127.0.0.1; a token Ray's tools would use is found, redacted and kept from local steps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bot.config import parse_config
from bot.errors import ConfigError
from bot.executor import build_executor
from tests.clusters.ray_head import RayHead
from tests.clusters.slurm_cluster import SlurmCluster
from tests.helpers.cli import colabot_env, run_cli
from tests.helpers.clusters import ray_client, ray_executor, slurm_executor
from tests.hostile.plants import plant, ran
from workers.errors import StepLostError
from workers.executors.base import Launch
from workers.executors.settings import RaySettings
from workers.safety.environment import step_environment
from workers.safety.redaction import redact
from workers.steprun import StepRun

pytestmark = pytest.mark.timeout(300)

BOT_TOKEN = "123456:AAHsecretBotTokenForTheClusterTests0"
WANDB_KEY = "0123456789abcdef0123456789abcdef0badc0de"
RAY_TOKEN = "ray-token-kept-home-5f1e"
# The step prints the digest of the key it got (never the key), and its arguments.
SHOW = (
    "import hashlib, os, sys; "
    "print('key', hashlib.sha256(os.environ.get('WANDB_API_KEY', '').encode()).hexdigest()); "
    "print('args', repr(sys.argv[1:]))"
)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def secret_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """colabot's environment holds every kind of secret; the W&B key is its own
    WANDB_API_KEY, as a user may set it."""
    monkeypatch.setenv("COLABOT_TELEGRAM_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("RAY_AUTH_TOKEN", RAY_TOKEN)
    monkeypatch.setenv("WANDB_API_KEY", WANDB_KEY)


def online_step_environment() -> dict[str, str]:
    """A step's environment for an online W&B run, as the runner makes it."""
    return step_environment({"WANDB_MODE": "online", "WANDB_API_KEY": WANDB_KEY})


# ---------------------------------------------------------------------------------- Slurm


async def saved_job_files(cluster: SlurmCluster, job: str) -> tuple[str, dict[str, str]]:
    """The batch script and the environment slurmctld saved for a job (as root reads them
    in its state folder)."""
    deadline = time.monotonic() + 20
    while True:
        found = list((cluster.dir / "state").glob(f"hash.*/job.{job}"))
        if found and (found[0] / "environment").is_file() and (found[0] / "script").is_file():
            break
        assert time.monotonic() < deadline, f"slurmctld saved nothing for job {job}"
        await asyncio.sleep(0.1)
    script = (found[0] / "script").read_bytes().rstrip(b"\0").decode()
    raw = (found[0] / "environment").read_bytes()[4:]  # after the count of variables
    env = dict(item.decode().partition("=")[::2] for item in raw.split(b"\0") if b"=" in item)
    return script, env


def assert_no_secret(env: dict[str, str]) -> None:
    text = "\n".join(f"{k}={v}" for k, v in env.items())
    for secret in (BOT_TOKEN, WANDB_KEY, RAY_TOKEN):
        assert secret not in text
    assert "COLABOT_TELEGRAM_TOKEN" not in env and "RAY_AUTH_TOKEN" not in env


async def test_a_slurm_step_with_newlines_in_its_name_and_data_path_and_secrets_at_home(
    on_slurm: SlurmCluster, tmp_path: Path, secret_environment: None
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    folder = tmp_path / "input\n$(touch pwned) `touch pwned`"
    folder.mkdir()
    data_path = f"labels.slp\ntouch {marks}/data\n"
    launch = Launch(
        job_id=7,
        index=1,
        name=f"predict x\ntouch {marks}/name",
        argv=(sys.executable, "-c", SHOW, data_path),
        env=online_step_environment(),
        cwd=folder,
        job_dir=tmp_path / "job",
    )
    started: list[str] = []
    run = StepRun(
        slurm_executor("hostile1"),
        launch,
        log_path=tmp_path / "job.log",
        on_start=lambda handle: started.append(str(handle.ref["slurm_job"])),
    )
    result = await asyncio.wait_for(run.run(), 120)
    log = (tmp_path / "job.log").read_text()
    assert result.ok, log
    assert f"args {[data_path]!r}" in log  # the argument arrived whole
    assert f"key {digest(WANDB_KEY)}" in log  # colabot's own key reached the online run
    assert ran(marks) == [] and list(tmp_path.rglob("pwned*")) == []
    script, env = await saved_job_files(on_slurm, started[0])
    assert script.splitlines() == [
        "#!/bin/sh",
        f"# job 7 step 2 (predict x\\x0atouch {marks}/name), written by colabot",
        "# The step's folder and command come as this script's arguments, never in its text.",
        'cd "$1" || exit 1',
        "shift",
        'exec "$@"',
    ]
    assert_no_secret(env)
    assert env["PYTHONSAFEPATH"] == "1" and env["WANDB_MODE"] == "online"
    # The private file that carried the key is gone with the step.
    assert list((tmp_path / "job" / ".slurm").iterdir()) == []


async def test_the_slurm_probe_in_a_planted_folder_runs_none_of_it_and_keeps_secrets(
    on_slurm: SlurmCluster,
    tmp_path: Path,
    secret_environment: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marks = tmp_path / "marks"
    # sbatch starts the probe where colabot runs; python -c would look there first.
    monkeypatch.chdir(plant(tmp_path / "cwd", marks))
    executor = slurm_executor("probe7")
    await executor.probe_shared(tmp_path / "data")
    assert ran(marks) == []
    (probe,) = [job for job, name, _ in on_slurm.jobs() if name == "colabot-probe7-probe"]
    _, env = await saved_job_files(on_slurm, probe)
    assert_no_secret(env)
    assert env.get("PYTHONSAFEPATH") == "1"


@pytest.mark.parametrize(
    ("arg", "said"),
    [
        ("--ou=/tmp/x", "'--ou=/tmp/x' may not be given: it is not one of the sbatch options"),
        ("--er=/tmp/x", "'--er=/tmp/x' may not be given: it is not one of the sbatch options"),
        ("--wr=touch /tmp/x", "may not be given: it is not one of the sbatch options"),
        ("-o/tmp/x", "must be an sbatch option in its --name=value form, got '-o/tmp/x'"),
        ("-vo/tmp/x", "must be an sbatch option in its --name=value form"),
        ("--export=ALL", "colabot hands each step its cleaned environment itself"),
    ],
)
def test_slurm_extra_args_outside_the_allow_list_stop_colabot_at_start(arg: str, said: str) -> None:
    env = colabot_env(worker_executor="slurm", slurm_extra_args=f"--qos=normal,{arg}")
    done = run_cli("check", env=env)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("config error: "), done.stderr
    assert "slurm.extra_args[1]: " in lines[0] and said in lines[0]
    assert "--qos, " in lines[0] or "instead" in lines[0] or "itself" in lines[0]


# ------------------------------------------------------------------------------------ Ray


def test_a_ray_cluster_without_a_token_is_refused_even_on_loopback() -> None:
    for address in ("http://127.0.0.1:8265", "http://localhost:8265", "http://[::1]:8265"):
        with pytest.raises(ConfigError) as caught:
            parse_config({"worker": {"executor": "ray"}, "ray": {"address": address}}, {})
        assert str(caught.value) == (
            f"ray.token: required even on this machine ({address}): every local user reaches "
            "it there, and without token auth anyone who reaches it can run code there. Start "
            "the cluster with RAY_AUTH_MODE=token and set ray.token (or COLABOT_RAY_TOKEN, "
            "RAY_AUTH_TOKEN or ~/.ray/auth_token); or, where only you can reach it, set "
            "ray.allow_unauthenticated = true"
        )
    allowed = {"address": "http://127.0.0.1:8265", "allow_unauthenticated": True}
    config = parse_config({"worker": {"executor": "ray"}, "ray": allowed}, {})
    assert config.ray.token == ""
    # A config built in code is refused too, when the executor is built.
    unchecked = config.replace(ray=RaySettings(address="http://127.0.0.1:8265"))
    with pytest.raises(ConfigError, match=r"ray\.token: required even on this machine"):
        build_executor(unchecked)


def test_the_cli_refuses_an_unauthenticated_loopback_cluster_in_one_line() -> None:
    env = colabot_env(worker_executor="ray", ray_address="http://127.0.0.1:8265")
    done = run_cli("check", env=env)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0 and len(lines) == 1, done.stderr
    assert lines[0].startswith("config error: ray.token: required even on this machine")


def test_a_token_ray_would_use_is_found_redacted_and_kept_from_local_steps(
    tmp_path: Path,
) -> None:
    table = {"worker": {"executor": "ray"}, "ray": {"address": "http://127.0.0.1:8265"}}
    from_env = "ray-env-token-1b2c3d4e5f"
    config = parse_config(table, {"RAY_AUTH_TOKEN": from_env, "HOME": str(tmp_path)})
    assert config.ray.token == from_env
    (tmp_path / ".ray").mkdir()
    from_file = "ray-file-token-9a8b7c6d5e"
    (tmp_path / ".ray" / "auth_token").write_text(from_file + "\n")
    config = parse_config(table, {"HOME": str(tmp_path)})
    assert config.ray.token == from_file
    # colabot's own [ray] token comes first.
    mine = parse_config({**table, "ray": {**table["ray"], "token": "mine-0123456789"}}, {})
    assert mine.ray.token == "mine-0123456789"
    assert redact(f"said {from_file}") == f"said {from_file}"
    build_executor(config)
    assert from_file not in redact(f"said {from_file}")
    assert "RAY_AUTH_TOKEN" not in step_environment(base={"RAY_AUTH_TOKEN": from_env})


pytest.importorskip(
    "ray.job_submission", reason="SKIPPED LOUDLY: Ray is not installed (colabot[ray])"
)


async def test_on_ray_the_wandb_key_reaches_the_step_but_never_the_jobs_api(
    ray_head: RayHead, tmp_path: Path, secret_environment: None
) -> None:
    instance = secrets.token_hex(4)
    launch = Launch(
        job_id=3,
        index=0,
        name="train",
        argv=(sys.executable, "-c", SHOW, "x"),
        env=online_step_environment(),
        cwd=tmp_path,
        job_dir=tmp_path / "job",
    )
    started: list[str] = []
    run = StepRun(
        ray_executor(ray_head, instance),
        launch,
        log_path=tmp_path / "job.log",
        on_start=lambda handle: started.append(str(handle.ref["submission_id"])),
    )
    result = await asyncio.wait_for(run.run(), 180)
    log = (tmp_path / "job.log").read_text()
    assert result.ok, log
    # colabot's own WANDB_API_KEY (the same value) still reached the online run.
    assert f"key {digest(WANDB_KEY)}" in log
    client = ray_client(ray_head)
    info = client.get_job_info(started[0])
    shown = repr(info) + repr(client.list_jobs())
    assert WANDB_KEY not in shown and BOT_TOKEN not in shown and RAY_TOKEN not in shown
    runtime_env: dict[str, Any] = info.runtime_env or {}
    env_vars: dict[str, str] = runtime_env.get("env_vars") or {}
    assert env_vars["PYTHONSAFEPATH"] == "1" and "WANDB_API_KEY" not in env_vars
    assert (info.metadata or {}).get("colabot_instance") == instance
    assert list((tmp_path / "job" / ".ray").iterdir()) == []


async def test_ray_reattach_follows_only_this_colabots_job_attempt_and_step(
    ray_head: RayHead, tmp_path: Path
) -> None:
    instance = secrets.token_hex(4)
    executor = ray_executor(ray_head, instance)
    launch = Launch(4, 0, "train", (sys.executable, "-c", "print(1)"), step_environment(), tmp_path)
    assert executor.submission_id(launch) != executor.submission_id(launch)  # a random part
    handle = await executor.start(launch)
    await handle.wait()
    await handle.close()
    later = ray_executor(ray_head, instance)
    assert (await later.reattach(handle.ref, launch)).submission == handle.ref["submission_id"]
    for other in (
        dataclasses.replace(launch, attempt=2),
        dataclasses.replace(launch, job_id=5),
        dataclasses.replace(launch, index=1),
    ):
        with pytest.raises(StepLostError, match="is not this step's"):
            await later.reattach(handle.ref, other)
    with pytest.raises(StepLostError, match="is not this step's"):
        await ray_executor(ray_head, "another1").reattach(handle.ref, launch)
    # A job someone else submitted under a name like colabot's is not followed either.
    client = ray_client(ray_head)
    planted = f"colabot-{instance}-job4-a1-s1-00000000"
    client.submit_job(entrypoint="true", submission_id=planted, metadata={"colabot_job": "4"})
    with pytest.raises(StepLostError, match="is not this step's"):
        await later.reattach({"submission_id": planted}, launch)
    await executor.close()
    await later.close()
