"""colabot with ``worker.executor = "slurm"``, through the chat, on a real one-machine Slurm
cluster with one dummy GPU: jobs run as batch jobs, the second GPU job says why it waits,
cancel reaches the step's signal handler with SIGINT first, a killed bot re-attaches, a step
past its time limit fails as TIMEOUT, and bad settings are one line at start."""

from __future__ import annotations

import asyncio
import dataclasses
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
from tests.clusters.slurm_cluster import SlurmCluster
from tests.emulator.faults import FaultyBotApi
from tests.workers.conftest import until
from tests.workers.kinds.conftest import SpacyCorpus, copy_spacy_corpus
from workers.executors.base import Placement
from workers.executors.settings import SlurmSettings

pytestmark = pytest.mark.timeout(420)

# What the test node can give a step: one CPU, 100 MB (it has two CPUs and 1000 MB).
SMALL = {"cpus_per_task": 1, "mem": "100M", "poll_seconds": 0.5, "time_limit": "10"}


def on_slurm_config(config: Config, **changes: Any) -> Config:
    """The chat configuration with jobs on the test cluster."""
    worker = dataclasses.replace(config.worker, executor="slurm")
    return config.replace(worker=worker, slurm=SlurmSettings(**{**SMALL, **changes}))


async def test_selftest_and_spacy_jobs_run_through_slurm(
    on_slurm: SlurmCluster,
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    spacy_corpus: SpacyCorpus,
    inputs_dir: Path,
) -> None:
    corpus = copy_spacy_corpus(spacy_corpus, inputs_dir / "corpus")
    colabot: Colabot = await start_colabot(on_slurm_config(chat_config))
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
    names = {name for _, name, _ in on_slurm.jobs()}
    assert any(n.endswith("-job2-a1-s1-prepare") for n in names), names
    assert any(n.endswith("-job2-a1-s2-train") for n in names), names
    runtime = (await person.say("/runtime")).text or ""
    assert "Jobs run on: Slurm partition debug" in runtime
    assert "1 node" in runtime and "1 GPU (1 free)" in runtime


async def test_the_second_gpu_job_says_why_it_waits_then_runs(
    on_slurm: SlurmCluster,
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
) -> None:
    await start_colabot(on_slurm_config(chat_config))
    await person.say("/train selftest steps=16 delay=0.25 gpu=yes")
    await person.say("/train selftest steps=16 delay=0.25 gpu=yes")
    waiting = await person.next_edit("waiting: Resources", timeout=60)
    assert "· waiting" in (waiting.text or "")
    jobs = (await person.say("/jobs")).text or ""
    assert "· running" in jobs and "on node1" in jobs and "· waiting" in jobs
    for job_id in (1, 2):
        await person.next_message(f"#{job_id} selftest train finished", timeout=120)


async def test_cancel_signals_the_step_with_sigint_first_and_ends_the_slurm_job(
    on_slurm: SlurmCluster,
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
) -> None:
    colabot: Colabot = await start_colabot(on_slurm_config(chat_config))
    assert colabot.engine is not None
    engine = colabot.engine
    await person.say("/train selftest steps=400 delay=0.25 stop_delay=1")
    await eventually(lambda: engine.job(1).progress.step is not None, 60, "progress")
    slurm_job = (engine.placement(1) or Placement()).job
    ask = await person.say("/cancel 1")
    await person.press(ask, "Yes, cancel it")
    await person.next_message("#1 selftest train was cancelled", timeout=60)
    # Runs scontrol each time: checked every 0.1 s, not every 20 ms.
    await until(lambda: on_slurm.state(slurm_job) in ("CANCELLED", "FAILED"), 30, "the end")
    log = engine.log_path(1).read_text()
    assert "selftest: got SIGINT, stopping in 1 s" in log
    assert "got SIGTERM" not in log  # it ended within the grace after SIGINT


def colabot_env(home: Path, emu: FaultyBotApi, **changes: str) -> dict[str, str]:
    """A colabot process's environment on the test cluster, with raw ``changes`` on top."""
    env = bot_process_env(
        home,
        emu,
        worker_executor="slurm",
        slurm_cpus_per_task="1",
        slurm_mem="100M",
        slurm_poll_seconds="0.5",
    )
    return {**env, **changes}


async def test_a_killed_bot_finds_its_slurm_step_again_and_the_chat_hears_everything_once(
    on_slurm: SlurmCluster, tmp_path: Path, emu: FaultyBotApi, person: Person
) -> None:
    env = colabot_env(tmp_path, emu)
    first = await start_bot_process(env, tmp_path)
    try:
        await emu.wait_until_polling(timeout=60)
        await person.say("/train selftest steps=40 delay=0.25")
        await person.next_edit(" of 40", timeout=60)  # it is stepping
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
    assert sum("#1 selftest train started" in t for t in texts) <= 1
    assert not any("was interrupted" in t for t in texts)
    log = (tmp_path / "data" / "jobs" / "1" / "job.log").read_text()
    assert log.count("progress 40/40") == 1 and log.count("progress 1/40") == 1


async def test_a_step_past_its_time_limit_is_warned_about_then_fails_as_timeout(
    on_slurm: SlurmCluster,
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
) -> None:
    # Slurm counts limits in minutes and checks them every half minute or so.
    await start_colabot(on_slurm_config(chat_config, time_limit="1"))
    await person.say("/train selftest steps=1000 delay=0.25")
    # A one-minute limit is within the shortest warning lead from the start.
    warned = await person.next_message("Slurm time limit ends it in", timeout=90)
    assert "/resume continues it" in (warned.text or "")
    failed = await person.next_message("#1 selftest train failed", timeout=200)
    text = failed.text or ""
    assert "TIMEOUT" in text and "slurm.time_limit = 1" in text
    assert "Last lines of the log" in text and "progress" in text


async def test_bad_slurm_settings_stop_colabot_at_start_with_one_line(
    on_slurm: SlurmCluster, tmp_path: Path, emu: FaultyBotApi
) -> None:
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
        env = colabot_env(tmp_path, emu, **change)
        code, lines = await asyncio.to_thread(run_bot_until_it_exits, env, tmp_path)
        assert code == 1, lines
        assert len(lines) == 1 and expected in lines[0], lines
        assert "Traceback" not in lines[0]
