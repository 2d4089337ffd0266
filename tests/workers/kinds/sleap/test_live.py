"""SLEAP training followed live over sleap-nn's ZMQ sockets, and stopped early through them:
real sleap-nn training on tiny data, through the engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.helpers.engine import WaitForState
from tests.workers.kinds.sleap.test_kind import TINY, TRAIN_TIMEOUT, outputs, submit, succeed
from workers.engine import Engine
from workers.jobs import Action, Progress
from workers.kinds.sleap.plan import load_plan
from workers.kinds.sleap.progress import parse_log

pytestmark = pytest.mark.timeout(600)


def _epochs_logged(engine: Engine, job_id: int) -> int:
    """How many epochs the job's (first) model has written to its training_log.csv."""
    plan = load_plan(engine.workdir(job_id) / "work")
    if plan is None:
        return 0
    log = Path(plan.models[0].run_dir) / "training_log.csv"
    return len(parse_log(log.read_text())) if log.is_file() else 0


async def test_step_level_progress_arrives_before_the_first_epoch_ends(
    engine: Engine, wait_for_state: WaitForState, sleap_inputs: dict[str, Path]
) -> None:
    early: list[Progress] = []
    seen: list[Progress] = []

    def record(job_id: int, progress: Progress) -> None:
        seen.append(progress)
        if "· step " in progress.message and _epochs_logged(engine, job_id) == 0:
            early.append(progress)

    engine.on_progress(record)
    params = {**TINY, "steps_per_epoch": "12"}
    job = submit(engine, Action.TRAIN, {"input": str(sleap_inputs["pkg"])}, **params)
    await succeed(engine, wait_for_state, job)

    assert early, [p.message for p in seen]
    first = early[0]
    assert first.message.startswith("epoch 1 of 2 · step ")
    assert "of 12" in first.message and "train loss" in first.message
    assert first.metrics["train_loss"] > 0
    assert any("steps_per_s" in p.metrics and p.eta_s is not None for p in early)
    last = seen[-1]
    assert last.message.startswith("epoch 2 of 2 · step 12 of 12") and "val loss" in last.message
    assert last.fraction == 1.0


async def test_stop_early_keeps_the_first_model_and_trains_the_next_then_infers(
    engine: Engine, wait_for_state: WaitForState, sleap_inputs: dict[str, Path]
) -> None:
    params = {**TINY, "epochs": "4", "steps_per_epoch": "6"}
    job = submit(
        engine, Action.TRAIN, {"input": str(sleap_inputs["package"])}, infer="yes", **params
    )
    training = asyncio.Event()
    engine.on_progress(
        lambda job_id, p: (
            training.set()
            if p.message.startswith("model 1 of 2: centroid · epoch 1 of 4 · step ")
            else None
        )
    )
    await asyncio.wait_for(training.wait(), timeout=TRAIN_TIMEOUT)
    step = engine.stop_early(job.id)
    assert step.name == "train centroid (model 1 of 2)"
    done = await succeed(engine, wait_for_state, job)

    assert "centroid: stopped early at epoch 1 of 4" in done.summary
    assert "centered_instance: 4 epochs" in done.summary
    kept = outputs(engine, job.id)
    assert all((model / "best.ckpt").is_file() for model in kept["model"])
    assert [p.name for p in kept["predictions"]] == ["project.pkg.slp.predictions.slp"]
    centroid = next(m for m in kept["model"] if "centroid" in m.name)
    assert len(parse_log((centroid / "training_log.csv").read_text())) == 1
