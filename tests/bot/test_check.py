"""``colabot check`` asks the services themselves: the Bot API server and its mode, and who
writes where in Google Drive. Run as a person runs it, against the loopback servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator import BotApiEmulator
from emulator.mode import ServerMode
from tests.clusters.ray_head import RayHead
from tests.clusters.slurm_cluster import SlurmCluster
from tests.helpers.chat import USER, secret_of
from tests.helpers.cli import colabot_env, start_cli
from tests.loopback.drive_server import DriveServer
from tests.loopback.wandb_server import WandbServer

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
    b"\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


async def run_check(emu: BotApiEmulator, tmp_path: Path, **settings: str) -> tuple[int, str]:
    env = colabot_env(
        telegram_token=emu.token,
        telegram_api_url=emu.url,
        telegram_allowed_users=str(USER),
        worker_data_dir=str(tmp_path / "data"),
        results_dir=str(tmp_path / "results"),
        **settings,
    )
    process = await start_cli("check", env=env)
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()


async def test_check_names_the_bot_and_the_results_folder(
    emu: BotApiEmulator, tmp_path: Path
) -> None:
    code, out = await run_check(emu, tmp_path)
    assert code == 0, out
    assert "ok: telegram: bot @colabot_offline_bot answers at" in out
    assert f"ok: results: the folder {tmp_path / 'results'}" in out
    assert secret_of(emu) not in out


@pytest.mark.parametrize("emu_mode", [ServerMode(self_hosted=True, local=True)], indirect=True)
async def test_check_tells_whether_a_self_hosted_server_runs_with_local(
    emu: BotApiEmulator, tmp_path: Path
) -> None:
    emu.set_profile_photo(USER, PNG)
    code, out = await run_check(emu, tmp_path)
    assert code == 1
    assert (
        "problem: telegram.local_mode: the self-hosted Bot API server runs with --local, but "
        "telegram.local_mode is off: set it to true"
    ) in out
    code, out = await run_check(emu, tmp_path, telegram_local_mode="true")
    assert code == 0, out
    assert "ok: Bot API server: self-hosted, with --local" in out


async def test_check_refuses_a_service_account_outside_a_shared_drive(
    emu: BotApiEmulator, tmp_path: Path, drive_server: DriveServer, service_account_file: Path
) -> None:
    my_drive = drive_server.add_folder("results")
    drive = dict(
        results_backend="drive",
        drive_service_account_file=str(service_account_file),
        drive_api_url=drive_server.url,
    )
    code, out = await run_check(emu, tmp_path, drive_folder_id=my_drive, **drive)
    assert code == 1
    assert "problem: drive.folder_id: Google Drive cannot be used for results" in out
    assert "a service account has no storage of its own" in out
    from tests.loopback.drive_server import DEFAULT_ACCOUNT

    shared = drive_server.add_shared_drive("Lab", {DEFAULT_ACCOUNT: "fileOrganizer"})
    code, out = await run_check(emu, tmp_path, drive_folder_id=shared, **drive)
    assert code == 0, out
    assert (
        f"ok: results: Google Drive, as service account {DEFAULT_ACCOUNT}, writing into 'Lab' "
        "(a shared drive)"
    ) in out


async def test_check_names_the_person_signed_in_to_colab(
    emu: BotApiEmulator, tmp_path: Path, drive_server: DriveServer
) -> None:
    # Colab's sign-in today: tokens from its metadata server (USE_AUTH_EPHEM=1), which
    # oauth2client sees as a Compute Engine machine's; the check names the person all the same.
    from tests.workers.drive.helpers import colab_environment

    email = drive_server.new_colab_user("ada@example.com")
    folder = drive_server.add_folder("colabot")
    env = colab_environment(
        colabot_env(
            telegram_token=emu.token,
            telegram_api_url=emu.url,
            telegram_allowed_users=str(USER),
            worker_data_dir=str(tmp_path / "data"),
            results_dir=str(tmp_path / "results"),
            results_backend="drive",
            drive_auth="colab",
            drive_folder_id=folder,
            drive_api_url=drive_server.url,
        ),
        tmp_path / "colab",
        drive_server,
    )
    process = await start_cli("check", env=env)
    out, err = await process.communicate()
    output = out.decode() + err.decode()
    assert process.returncode == 0, output
    assert (
        f"ok: results: Google Drive, as user {email}, writing into 'colabot' (My Drive)"
    ) in output
    token_asks = [r for r in drive_server.requests() if r.path.endswith(f"/{email}/token")]
    assert token_asks and all(r.status == 200 for r in token_asks)


async def test_check_on_ray_reports_the_version_the_nodes_and_the_shared_folders(
    emu: BotApiEmulator, tmp_path: Path, ray_head: RayHead
) -> None:
    code, out = await run_check(
        emu,
        tmp_path,
        worker_executor="ray",
        ray_address=ray_head.address,
        ray_token=ray_head.token,
    )
    assert code == 0, out
    assert f"ok: Ray cluster at {ray_head.address}, version 2." in out
    assert "1 node, 2 CPUs" in out and "1 GPU (1 free)" in out
    assert f"ok: the cluster's nodes see the data folder {tmp_path / 'data'}" in out
    assert f"they see the results folder {tmp_path / 'results'} too" in out
    assert ray_head.token not in out
    code, out = await run_check(
        emu, tmp_path, worker_executor="ray", ray_address=ray_head.address, ray_token="nope-x1"
    )
    assert code == 1 and "refused the token" in out and "nope-x1" not in out


async def test_check_on_slurm_lists_the_partition_and_runs_a_probe_job(
    emu: BotApiEmulator, tmp_path: Path, on_slurm: SlurmCluster
) -> None:
    code, out = await run_check(emu, tmp_path, worker_executor="slurm", slurm_mem="100M")
    assert code == 0, out
    assert "ok: Slurm partition debug, version slurm-wlm" in out
    assert "1 node, 2 CPUs (2 free), 1 GPU (1 free)" in out
    assert f"ok: the cluster's nodes see the data folder {tmp_path / 'data'}" in out
    code, out = await run_check(emu, tmp_path, worker_executor="slurm", slurm_partition="big")
    assert code == 1 and "slurm.partition: there is no partition 'big'" in out


async def test_check_asks_wandb_about_the_key_and_never_shows_it(
    emu: BotApiEmulator, tmp_path: Path, wandb_server: WandbServer
) -> None:
    key = "fedcba9876543210fedcba9876543210fedcba98"
    code, out = await run_check(emu, tmp_path, wandb_api_key=key, wandb_base_url=wandb_server.base)
    assert code == 1, out
    assert "W&B:                online, project colabot (key ****)" in out
    assert f"problem: W&B: {wandb_server.base} refused the key (" in out
    assert "user is not logged in" in out and "online runs would log offline" in out
    assert wandb_server.seen_keys == [key] and key not in out
