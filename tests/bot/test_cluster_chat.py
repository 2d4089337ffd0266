"""colabot with its jobs on a real cluster, through the chat. Each test runs once on the Ray
head (token auth, one logical GPU) and once on the one-machine Slurm cluster (one dummy GPU):
jobs run there and the cluster lists them, the second GPU job says why it waits, cancel ends
the job on the cluster, a killed bot finds its step again and the chat hears everything once,
and bad settings stop colabot at start with one line. What the clusters do differently is
checked in the test, cluster by cluster; what only one of them does is in test_ray_chat.py
and test_slurm_chat.py."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config
from bot.service import Colabot
from tests.clusters.ray_head import RayHead
from tests.emulator.faults import FaultyBotApi
from tests.helpers.chat import USER, Person
from tests.helpers.cli import run_bot_until_it_exits, start_bot_process
from tests.helpers.clusters import AnyCluster, OnRay, ray_jobs
from tests.helpers.spacy_data import SpacyCorpus, copy_spacy_corpus
from tests.helpers.waiting import eventually
from workers.executors.base import Placement

pytestmark = pytest.mark.timeout(420)


async def test_selftest_and_spacy_jobs_run_on_the_cluster_and_it_lists_them(
    cluster: AnyCluster,
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    spacy_corpus: SpacyCorpus,
    input_root: Path,
) -> None:
    corpus = copy_spacy_corpus(spacy_corpus, input_root / "corpus")
    colabot: Colabot = await start_colabot(cluster.chat_config(chat_config))
    if isinstance(cluster, OnRay):
        await person.say("/train selftest steps=3 delay=0.05")
    else:
        # Long enough for /status to show the batch job on its node.
        assert colabot.engine is not None
        engine = colabot.engine
        await person.say("/train selftest steps=30 delay=0.2")

        def on_node() -> bool:
            place = engine.placement(1)
            return place is not None and place.node is not None

        await eventually(on_node, 60, "the step to run on a node")
        status = (await person.say("/status 1")).text or ""
        slurm_job = (engine.placement(1) or Placement()).job
        assert slurm_job.isdigit() and f"Slurm job: {slurm_job}" in status
        assert "node: node1" in status and "time limit: ends in" in status
    await person.next_message("#1 selftest train finished", timeout=120)
    await person.say(
        f"/train spacy config={corpus.config} train={corpus.train} dev={corpus.dev} "
        "max_steps=20 gpu=cpu"
    )
    done = await person.next_message("#2 spacy train finished", timeout=240)
    assert "model-best" in (done.text or "")
    if isinstance(cluster, OnRay):
        listed = ray_jobs(cluster.head)
        ours = {meta.get("colabot_job") for _, meta in listed.values()}
        assert {"1", "2"} <= ours
        steps = [
            meta["colabot_step"] for _, meta in listed.values() if meta.get("colabot_job") == "2"
        ]
        assert "prepare" in steps and "train" in steps
        runtime = (await person.say("/runtime")).text or ""
        assert "Jobs run on: Ray cluster at" in runtime
        assert "1 node" in runtime and "1 GPU" in runtime
    else:
        names = {name for _, name, _ in cluster.slurm.jobs()}
        assert any(n.endswith("-job2-a1-s1-prepare") for n in names), names
        assert any(n.endswith("-job2-a1-s2-train") for n in names), names
        runtime = (await person.say("/runtime")).text or ""
        assert "Jobs run on: Slurm partition debug" in runtime
        assert "1 node" in runtime and "1 GPU (1 free)" in runtime


async def test_the_second_gpu_job_says_why_it_waits_then_runs(
    cluster: AnyCluster,
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
) -> None:
    on_ray = isinstance(cluster, OnRay)
    colabot: Colabot = await start_colabot(cluster.chat_config(chat_config))
    steps = 24 if on_ray else 16
    await person.say(f"/train selftest steps={steps} delay=0.25 gpu=yes")
    await person.say(f"/train selftest steps={steps} delay=0.25 gpu=yes")
    why = "waiting for a free GPU on the cluster" if on_ray else "waiting: Resources"
    waiting = await person.next_edit(why, timeout=120 if on_ray else 60)
    assert "· waiting" in (waiting.text or "")
    if on_ray:
        assert colabot.engine is not None
        await person.next_edit("on 127.0.0.1", timeout=120)  # one of them got the GPU
    jobs = (await person.say("/jobs")).text or ""
    assert "· running" in jobs and f"on {cluster.node}" in jobs and "· waiting" in jobs
    for job_id in (1, 2):
        await person.next_message(
            f"#{job_id} selftest train finished", timeout=180 if on_ray else 120
        )


async def test_cancel_in_the_chat_ends_the_job_on_the_cluster(
    cluster: AnyCluster,
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
) -> None:
    on_ray = isinstance(cluster, OnRay)
    colabot: Colabot = await start_colabot(cluster.chat_config(chat_config))
    assert colabot.engine is not None
    engine = colabot.engine
    # On Slurm the step stops a second after its SIGINT: well within the grace before SIGTERM.
    await person.say("/train selftest steps=400 delay=0.25" + ("" if on_ray else " stop_delay=1"))
    await eventually(
        lambda: engine.job(1).progress.step is not None, 120 if on_ray else 60, "progress"
    )
    on_cluster = (engine.placement(1) or Placement()).job
    if on_ray:
        status = await person.say("/status 1")
        assert f"Ray job: {on_cluster}" in (status.text or "") and "node: 127.0.0.1" in (
            status.text or ""
        )
    ask = await person.say("/cancel 1")
    await person.press(ask, "Yes, cancel it")
    await person.next_message("#1 selftest train was cancelled", timeout=60)
    # Each check asks the cluster: every 0.1 s, not every 20 ms.
    if isinstance(cluster, OnRay):
        head = cluster.head
        await eventually(
            lambda: ray_jobs(head)[on_cluster][0] == "STOPPED", 30, "STOPPED", every=0.1
        )
    else:
        slurm = cluster.slurm
        await eventually(
            lambda: slurm.state(on_cluster) in ("CANCELLED", "FAILED"), 30, "the end", every=0.1
        )
        log = engine.log_path(1).read_text()
        assert "selftest: got SIGINT, stopping in 1 s" in log
        assert "got SIGTERM" not in log  # it ended within the grace after SIGINT


async def test_a_killed_bot_finds_its_step_again_and_the_chat_hears_everything_once(
    cluster: AnyCluster, tmp_path: Path, emu: FaultyBotApi, person: Person
) -> None:
    on_ray = isinstance(cluster, OnRay)
    env = cluster.bot_env(tmp_path, emu)
    first = await start_bot_process(env, tmp_path)
    try:
        await emu.wait_until_polling(timeout=90 if on_ray else 60)
        await person.say("/train selftest steps=40 delay=0.25")
        await person.next_edit(" of 40", timeout=120 if on_ray else 60)  # it is stepping
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
    if on_ray:
        assert not any("stopped while the job was running" in t for t in texts)
    else:
        assert sum("#1 selftest train started" in t for t in texts) <= 1
        assert not any("was interrupted" in t for t in texts)
    log = (tmp_path / "data" / "jobs" / "1" / "job.log").read_text()
    assert log.count("progress 40/40") == 1 and log.count("progress 1/40") == 1


async def test_bad_cluster_settings_stop_colabot_at_start_with_one_line(
    cluster: AnyCluster, tmp_path: Path, emu: FaultyBotApi, request: pytest.FixtureRequest
) -> None:
    env = cluster.bot_env(tmp_path, emu)
    wrong_token = "not-the-token-7f3a"
    if isinstance(cluster, OnRay):
        cases = [
            ({"COLABOT_RAY_ADDRESS": "http://127.0.0.1:9"}, "cannot reach the Ray cluster"),
            ({"COLABOT_RAY_TOKEN": wrong_token}, "refused the token"),
            ({"COLABOT_RAY_GPUS_PER_JOB": "4"}, "ray.gpus_per_job: is 4, but the largest node"),
        ]
        if os.geteuid() == 0:
            hidden = tmp_path / "hidden" / "data"
            hidden.mkdir(parents=True)
            start_ray_head: Callable[..., RayHead] = request.getfixturevalue("start_ray_head")
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
    else:
        empty = tmp_path / "no-slurm-here"
        empty.mkdir()
        cases = [
            ({"PATH": str(empty)}, "sbatch is not on PATH"),
            ({"COLABOT_SLURM_PARTITION": "gpu-big"}, "slurm.partition: there is no partition"),
            (
                {"COLABOT_SLURM_EXTRA_ARGS": "--qos=normal,--output=/tmp/x.log"},
                "slurm.extra_args[1]: '--output=/tmp/x.log' may not be given",
            ),
        ]
    for change, expected in cases:
        code, lines = await asyncio.to_thread(run_bot_until_it_exits, {**env, **change}, tmp_path)
        assert code == 1, lines
        assert len(lines) == 1 and expected in lines[0], lines
        assert "Traceback" not in lines[0] and wrong_token not in lines[0]
