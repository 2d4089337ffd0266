"""colabot with ``worker.executor = "ray"``, through the chat: jobs run on a real Ray head
(token auth, one logical GPU), wait for the GPU and say so, are cancelled on the cluster,
survive a killed bot, are interrupted with the head, and bad settings are one line."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config
from bot.service import Colabot
from tests.bot.conftest import (
    USER,
    Person,
    bot_process_env,
    eventually,
    run_bot_until_it_exits,
    start_bot_process,
)
from tests.clusters.ray_head import RayHead
from tests.emulator.faults import FaultyBotApi
from tests.workers.conftest import until
from tests.workers.kinds.conftest import SpacyCorpus, copy_spacy_corpus
from workers.executors.base import Placement
from workers.executors.settings import RaySettings

pytestmark = pytest.mark.timeout(420)

ray_job_submission = pytest.importorskip(
    "ray.job_submission", reason="SKIPPED LOUDLY: Ray is not installed (colabot[ray])"
)


def on_ray(config: Config, head: RayHead, data_dir: Path | None = None) -> Config:
    """The chat configuration with jobs on ``head``."""
    worker = dataclasses.replace(
        config.worker, executor="ray", data_dir=data_dir or config.worker.data_dir
    )
    return config.replace(worker=worker, ray=RaySettings(address=head.address, token=head.token))


def ray_jobs(head: RayHead) -> dict[str, tuple[str, dict[str, str]]]:
    """Ray's own job list: submission id -> (status, metadata)."""
    client = ray_job_submission.JobSubmissionClient(
        head.address, headers={"Authorization": f"Bearer {head.token}"}
    )
    return {
        str(job.submission_id): (str(job.status), dict(job.metadata or {}))
        for job in client.list_jobs()
    }


async def test_selftest_and_spacy_jobs_run_on_ray_and_ray_lists_them(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    ray_head: RayHead,
    spacy_corpus: SpacyCorpus,
    inputs_dir: Path,
) -> None:
    corpus = copy_spacy_corpus(spacy_corpus, inputs_dir / "corpus")
    await start_colabot(on_ray(chat_config, ray_head))
    await person.say("/train selftest steps=3 delay=0.05")
    await person.next_message("#1 selftest train finished", timeout=120)
    await person.say(
        f"/train spacy config={corpus.config} train={corpus.train} dev={corpus.dev} "
        "max_steps=20 gpu=cpu"
    )
    done = await person.next_message("#2 spacy train finished", timeout=240)
    assert "model-best" in (done.text or "")
    listed = ray_jobs(ray_head)
    ours = {meta.get("colabot_job") for _, meta in listed.values()}
    assert {"1", "2"} <= ours
    steps = [meta["colabot_step"] for _, meta in listed.values() if meta.get("colabot_job") == "2"]
    assert "prepare" in steps and "train" in steps
    runtime = await person.say("/runtime")
    assert "Jobs run on: Ray cluster at" in (runtime.text or "")
    assert "1 node" in (runtime.text or "") and "1 GPU" in (runtime.text or "")


async def test_the_second_gpu_job_says_it_waits_for_a_free_gpu(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    ray_head: RayHead,
) -> None:
    colabot: Colabot = await start_colabot(on_ray(chat_config, ray_head))
    await person.say("/train selftest steps=24 delay=0.25 gpu=yes")
    await person.say("/train selftest steps=24 delay=0.25 gpu=yes")
    waiting = await person.next_edit("waiting for a free GPU on the cluster", timeout=120)
    assert "· waiting" in (waiting.text or "")
    assert colabot.engine is not None
    await person.next_edit("on 127.0.0.1", timeout=120)  # one of them got the GPU
    jobs = (await person.say("/jobs")).text or ""
    assert "· running" in jobs and "on 127.0.0.1" in jobs and "· waiting" in jobs
    for job_id in (1, 2):
        await person.next_message(f"#{job_id} selftest train finished", timeout=180)


async def test_cancel_in_the_chat_stops_the_ray_job(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    ray_head: RayHead,
) -> None:
    colabot: Colabot = await start_colabot(on_ray(chat_config, ray_head))
    assert colabot.engine is not None
    engine = colabot.engine
    await person.say("/train selftest steps=400 delay=0.25")
    await eventually(lambda: engine.job(1).progress.step is not None, 120, "progress")
    status = await person.say("/status 1")
    submission = (engine.placement(1) or Placement()).job
    assert f"Ray job: {submission}" in (status.text or "") and "node: 127.0.0.1" in (
        status.text or ""
    )
    ask = await person.say("/cancel 1")
    await person.press(ask, "Yes, cancel it")
    await person.next_message("#1 selftest train was cancelled", timeout=60)
    # Asks Ray's Jobs API each time: checked every 0.1 s, not every 20 ms.
    await until(lambda: ray_jobs(ray_head)[submission][0] == "STOPPED", 30, "STOPPED")


def colabot_env(home: Path, emu: FaultyBotApi, head: RayHead) -> dict[str, str]:
    return bot_process_env(
        home, emu, worker_executor="ray", ray_address=head.address, ray_token=head.token
    )


async def test_a_killed_bot_finds_its_ray_step_again_and_the_chat_hears_everything_once(
    tmp_path: Path, emu: FaultyBotApi, person: Person, ray_head: RayHead
) -> None:
    env = colabot_env(tmp_path, emu, ray_head)
    first = await start_bot_process(env, tmp_path)
    try:
        await emu.wait_until_polling(timeout=90)
        await person.say("/train selftest steps=40 delay=0.25")
        await person.next_edit(" of 40", timeout=120)  # it is stepping
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    second = await start_bot_process(env, tmp_path)
    try:
        await person.next_message("#1 selftest train finished", timeout=120)
    finally:
        second.send_signal(signal.SIGINT)
        await asyncio.wait_for(second.wait(), 60)
    texts = [m.get("text", "") for m in emu.messages(USER) if m.get("from", {}).get("is_bot")]
    assert sum("#1 selftest train finished" in t for t in texts) == 1
    assert not any("stopped while the job was running" in t for t in texts)
    log = (tmp_path / "data" / "jobs" / "1" / "job.log").read_text()
    assert log.count("progress 40/40") == 1 and log.count("progress 1/40") == 1


async def test_a_head_that_goes_away_interrupts_the_job_and_resume_finishes_it_on_a_new_one(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    start_ray_head: Callable[..., RayHead],
) -> None:
    doomed = start_ray_head()
    first: Colabot = await start_colabot(on_ray(chat_config, doomed))
    assert first.engine is not None
    engine = first.engine
    await person.say("/train selftest steps=40 delay=0.25")
    await eventually(lambda: (engine.job(1).progress.step or 0) >= 2, 120, "progress")
    await asyncio.to_thread(doomed.stop)
    lost = await person.next_message("#1 selftest train was interrupted", timeout=90)
    assert "Ray cluster" in (lost.text or "") and "lost" in (lost.text or "")
    await first.stop()
    fresh = start_ray_head()
    await start_colabot(on_ray(chat_config, fresh))
    await person.emu.send_text("/resume 1", user_id=USER)  # answered by a new status message
    await person.next_message("#1 selftest train finished", timeout=180)


async def test_bad_ray_settings_stop_colabot_at_start_with_one_line(
    tmp_path: Path,
    emu: FaultyBotApi,
    ray_head: RayHead,
    start_ray_head: Callable[..., RayHead],
) -> None:
    env = colabot_env(tmp_path, emu, ray_head)
    cases = [
        ({"COLABOT_RAY_ADDRESS": "http://127.0.0.1:9"}, "cannot reach the Ray cluster"),
        ({"COLABOT_RAY_TOKEN": "not-the-token-7f3a"}, "refused the token"),
        ({"COLABOT_RAY_GPUS_PER_JOB": "4"}, "ray.gpus_per_job: is 4, but the largest node"),
    ]
    if os.geteuid() == 0:
        hidden = tmp_path / "hidden" / "data"
        hidden.mkdir(parents=True)
        apart = start_ray_head(hide=hidden)
        cases.append(
            (
                {
                    "COLABOT_WORKER_DATA_DIR": str(hidden),
                    "COLABOT_RAY_ADDRESS": apart.address,
                    "COLABOT_RAY_TOKEN": apart.token,
                },
                "worker.data_dir: the Ray cluster does not share colabot's data folder",
            )
        )
    for change, expected in cases:
        code, lines = await asyncio.to_thread(run_bot_until_it_exits, {**env, **change}, tmp_path)
        assert code == 1, lines
        assert len(lines) == 1 and expected in lines[0], lines
        assert "Traceback" not in lines[0] and "not-the-token-7f3a" not in lines[0]
