"""How good a training's models are: kept with the job, compared with the newest earlier run
on the same data in its summary, and two trainings side by side (``Engine.compare``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from tests.helpers.engine import WaitForState, selftest
from workers.engine import Engine, EngineSettings
from workers.errors import CompareError, UnknownJobError
from workers.jobs import Action, JobSpec, JobState
from workers.kinds.base import JobContext, Outcome, Param, Step, validate_common
from workers.kinds.registry import KindRegistry
from workers.kinds.selftest.kind import PARAMS, SelftestKind
from workers.quality import ModelScores, Quality, Score
from workers.store.database import Store

# The plot step of the scored kind: a picture naming both jobs' folders (as a real kind's
# picture names each curve by its folder), written only when both folders exist.
DRAW_BOTH = (
    "import pathlib, sys\n"
    "from tests.emulator.helpers import png_bytes\n"
    "dest, folders = pathlib.Path(sys.argv[1]), [pathlib.Path(p) for p in sys.argv[2:]]\n"
    "if not all(f.is_dir() for f in folders):\n"
    "    print('colabot-plot: a folder is missing'); sys.exit(2)\n"
    "dest.write_bytes(png_bytes(8, 6))\n"
    "dest.with_suffix('.txt').write_text(' '.join(f.name for f in folders))\n"
)


class ScoredKind(SelftestKind):
    """The selftest, reporting a held-out score (``score=``) on training data named by
    ``data=``, and drawing a picture of both jobs when asked to compare."""

    name = "scored"

    def params(self, action: Action) -> Mapping[str, Param]:
        return {
            **PARAMS,
            "score": Param(float, 0.5, "the held-out F1 to report"),
            "data": Param(str, "d1", "the fingerprint of the training data"),
        }

    def validate(self, spec: JobSpec) -> JobSpec:
        return validate_common(spec, self.inputs(spec.action), self.params(spec.action))

    def collect(self, ctx: JobContext) -> Outcome:
        outcome = super().collect(ctx)
        score = float(ctx.param("score") or 0.0)
        model = ModelScores("m", "val", (Score("F1", score), Score("dist", 3.0, False, "px")))
        asked = {k: v for k, v in ctx.spec.params.items() if k in ("score", "steps")}
        quality = Quality(str(ctx.param("data")), (model,), asked)
        return Outcome(outcome.outputs, outcome.summary, outcome.metrics, quality)

    def plot(
        self, workdir: Path, python: str, dest: Path, compare: Path | None = None
    ) -> Step | None:
        folders = [str(workdir)] + ([str(compare)] if compare is not None else [])
        return Step("plot", [python, "-c", DRAW_BOTH, str(dest), *folders])


@pytest.fixture
async def scored_engine(engine_settings: EngineSettings, store: Store) -> AsyncIterator[Engine]:
    eng = Engine(engine_settings, store, KindRegistry([SelftestKind(), ScoredKind()]))
    await eng.start()
    yield eng
    await eng.stop()


def scored(**params: str) -> JobSpec:
    return JobSpec("scored", Action.TRAIN, {}, {"delay": "0", "steps": "1", **params})


async def run(engine: Engine, wait_for_state: WaitForState, spec: JobSpec) -> int:
    job = engine.submit(spec)
    done = await wait_for_state(engine, job.id)
    assert done.state is JobState.SUCCEEDED, done.error
    return job.id


async def test_a_training_is_compared_with_the_newest_earlier_run_on_the_same_data(
    scored_engine: Engine, wait_for_state: WaitForState
) -> None:
    engine = scored_engine
    first = await run(engine, wait_for_state, scored(score="0.5"))
    other_data = await run(engine, wait_for_state, scored(score="0.9", data="d2"))
    second = await run(engine, wait_for_state, scored(score="0.75", steps="2"))

    assert engine.store.get_job(first).summary == "selftest train: 1 steps"
    assert "vs #" not in engine.store.get_job(other_data).summary
    summary = engine.store.get_job(second).summary.splitlines()
    assert summary == [
        "selftest train: 2 steps",
        f"m: F1 0.5 → 0.75 (+0.25 better) vs #{first}",
        "differing parameters: score 0.5 → 0.75, steps 1 → 2",
    ]
    kept = engine.quality(second)
    assert kept is not None and kept.data == "d1"
    assert [m.line() for m in kept.models] == ["m (val): F1 0.750 · dist 3 px"]


async def test_two_trainings_side_by_side_with_one_picture_of_both(
    scored_engine: Engine, wait_for_state: WaitForState
) -> None:
    engine = scored_engine
    first = await run(engine, wait_for_state, scored(score="0.5"))
    second = await run(engine, wait_for_state, scored(score="0.6", data="d2"))

    both = await engine.compare(second, first)

    assert (both.first.id, both.second.id) == (second, first)
    assert both.first_quality == engine.quality(second)
    assert both.second_quality == engine.quality(first)
    assert both.picture is not None and both.picture.read_bytes().startswith(b"\x89PNG")
    assert both.picture.with_suffix(".txt").read_text() == f"{second} {first}"
    assert both.picture.is_relative_to(engine.workdir(second)) and both.picture_note == ""


async def test_without_a_picture_the_comparison_says_why(
    scored_engine: Engine, wait_for_state: WaitForState
) -> None:
    first = await run(scored_engine, wait_for_state, selftest(steps=1, delay=0))
    second = await run(scored_engine, wait_for_state, selftest(steps=1, delay=0))
    both = await scored_engine.compare(first, second)
    assert both.picture is None and both.picture_note == "selftest jobs draw no loss"
    assert both.first_quality is None and both.second_quality is None


async def test_each_pair_that_cannot_be_compared_is_refused_saying_why(
    scored_engine: Engine, wait_for_state: WaitForState
) -> None:
    engine = scored_engine
    trained = await run(engine, wait_for_state, scored())
    other_kind = await run(engine, wait_for_state, selftest(steps=1, delay=0))
    inference = await run(
        engine, wait_for_state, selftest(Action.INFER, model=trained, steps=1, delay=0)
    )
    failed = engine.submit(scored(fail="yes", steps="2"))
    assert (await wait_for_state(engine, failed.id)).state is JobState.FAILED
    running = engine.submit(scored(steps="1000", delay="1"))
    await wait_for_state(engine, running.id, {JobState.RUNNING})

    async def refusal(first: int, second: int) -> str:
        with pytest.raises(CompareError) as refused:
            await engine.compare(first, second)
        assert str(refused.value).startswith(f"cannot compare job {first} with job {second}: ")
        return refused.value.reason

    assert await refusal(trained, other_kind) == (
        f"job {trained} is a scored training and job {other_kind} a selftest training: "
        "only jobs of the same kind are compared"
    )
    assert await refusal(trained, running.id) == (
        f"job {running.id} is running; compare it once it has finished"
    )
    assert await refusal(inference, trained) == (
        f"job {inference} is an inference, not a training: only trainings are compared"
    )
    assert await refusal(trained, failed.id) == (
        f"job {failed.id} is failed: only trainings that finished well are compared"
    )
    assert await refusal(trained, trained) == (
        "that is the same job twice; name two different trainings"
    )
    with pytest.raises(UnknownJobError, match="there is no job 99"):
        await engine.compare(trained, 99)
    await engine.cancel(running.id)
