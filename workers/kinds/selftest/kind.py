"""The built-in ``selftest`` kind: a small Python program that behaves like a training job.

It prints progress, writes a model, predictions and checkpoints, and can be told to fail,
to run long, or to flood its output, so the whole path can be tried without any framework.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from workers.jobs import Action, JobSpec, Progress
from workers.kinds.base import (
    InputSlot,
    JobContext,
    Outcome,
    Output,
    Param,
    Step,
    validate_common,
)
from workers.kinds.plans import REQUEST, read_json, write_json
from workers.kinds.selftest.plan import Request
from workers.progress import StepCounter

TOOLS_MODULE = "workers.kinds.selftest.tools"
STOP_FILE = "stop-early"
PROGRESS_LINE = re.compile(r"^progress (\d+)/(\d+)(?: loss=([0-9.eE+-]+))?")

TRAIN_INPUTS = (InputSlot("input", "any file or folder to read", required=False),)
INFER_INPUTS = (
    InputSlot("model", "a finished selftest training job's id, or a folder"),
    InputSlot("input", "any file or folder to read", required=False),
)
PARAMS: dict[str, Param] = {
    "steps": Param(int, 5, "how many steps to run", minimum=1, maximum=1_000_000),
    "delay": Param(
        float, 0.2, "seconds per step (make it long to run long)", minimum=0.0, maximum=3600.0
    ),
    "fail": Param(bool, False, "fail halfway, to see how failures look"),
    "gpu": Param(bool, False, "reserve a GPU for the step on a cluster (to try its scheduling)"),
    "stop_delay": Param(
        float,
        0.0,
        "on a cancel, go on this many seconds (as a trainer saving a checkpoint does)",
        minimum=0.0,
        maximum=600.0,
    ),
    "flood_mb": Param(
        float, 0.0, "print this many MB of output at full speed", minimum=0.0, maximum=100_000.0
    ),
}


def parse_progress_line(line: str) -> tuple[int, int, float | None] | None:
    """``progress 3/10 loss=0.25`` -> (3, 10, 0.25); anything else -> None."""
    match = PROGRESS_LINE.match(line)
    if match is None:
        return None
    loss = float(match.group(3)) if match.group(3) else None
    return int(match.group(1)), int(match.group(2)), loss


class SelftestKind:
    """A stand-in for real training and inference, for trying colabot out and for tests."""

    name = "selftest"
    summary = "a built-in test job: prints progress and writes a tiny model (no GPU needed)"
    actions = frozenset({Action.TRAIN, Action.INFER})

    def inputs(self, action: Action) -> tuple[InputSlot, ...]:
        """Training reads an optional input; inference needs a model."""
        return TRAIN_INPUTS if action is Action.TRAIN else INFER_INPUTS

    def params(self, action: Action) -> Mapping[str, Param]:
        """The same parameters for both actions."""
        return PARAMS

    def validate(self, spec: JobSpec) -> JobSpec:
        """Check the inputs and parameters."""
        return validate_common(spec, self.inputs(spec.action), PARAMS)

    def steps(self, ctx: JobContext) -> Iterator[Step]:
        """One step: the selftest program."""
        training = ctx.spec.action is Action.TRAIN
        stop_file = ctx.scratch_dir / STOP_FILE if training else None
        if stop_file is not None:
            stop_file.unlink(missing_ok=True)  # a stop asked of an earlier attempt
        request = Request(
            mode=ctx.spec.action.value,
            out=str(ctx.outputs_dir),
            steps=int(ctx.param("steps") or 0),
            delay=float(ctx.param("delay") or 0.0),
            input=str(ctx.inputs["input"][0]) if "input" in ctx.inputs else None,
            models=[str(model) for model in ctx.inputs.get("model", [])],
            fail=bool(ctx.param("fail")),
            flood_mb=float(ctx.param("flood_mb") or 0.0),
            resume_from=str(ctx.resume_from) if ctx.resume_from is not None else None,
            stop_delay=float(ctx.param("stop_delay") or 0.0),
            stop_file=str(stop_file) if stop_file else None,
        )
        write_json(ctx.scratch_dir / REQUEST, request)
        if ctx.resume_from is not None:
            ctx.notify(f"resuming from checkpoint {ctx.resume_from.name}")
        argv = [ctx.python, "-m", TOOLS_MODULE, "run", str(ctx.scratch_dir)]
        counter = StepCounter("step")

        def parse(source: str, line: str) -> Progress | None:
            parsed = parse_progress_line(line)
            if parsed is None:
                return None
            done, total, loss = parsed
            return counter.update(done, total, metrics={"loss": loss} if loss is not None else {})

        yield Step(
            name=f"selftest {ctx.spec.action.value}",
            argv=argv,
            parser=parse,
            wants_gpu=bool(ctx.param("gpu")),
            stop_file=stop_file,
            stops_when="after its current step",
        )

    def explain_failure(self, ctx: JobContext, step: Step, tail: list[str]) -> str | None:
        """Recognise the requested failure."""
        for line in reversed(tail):
            if "told to fail" in line:
                return "the job was told to fail (fail=yes)"
            if "selftest: error: input" in line:
                return line.split("error: ", 1)[1]
        return None

    def collect(self, ctx: JobContext) -> Outcome:
        """The model (training) or predictions (inference), and the result summary."""
        out = ctx.outputs_dir
        outputs = [Output(out / "result.json", "metrics", "result.json")]
        if ctx.spec.action is Action.TRAIN:
            outputs.insert(0, Output(out / "model", "model", "model"))
        else:
            outputs.insert(0, Output(out / "predictions.jsonl", "predictions", "predictions"))
        steps = ctx.param("steps")
        summary = f"selftest {ctx.spec.action.value}: {steps} steps"
        result = read_json(out / "result.json")
        done = result.get("steps_done") if isinstance(result, dict) else None
        if ctx.stopped_early and isinstance(done, int) and done < int(steps or 0):
            summary = f"selftest train: stopped early at step {done} of {steps}"
        return Outcome(outputs=outputs, summary=summary)

    def plot(
        self, workdir: Path, python: str, dest: Path, compare: Path | None = None
    ) -> Step | None:
        """Selftest jobs draw no loss."""
        return None

    def checkpoint(self, ctx: JobContext) -> Path | None:
        """The newest ``step-N.json`` the program wrote."""
        found = sorted(
            (ctx.outputs_dir / "checkpoints").glob("step-*.json"),
            key=lambda p: int(p.stem.split("-")[1]),
        )
        return found[-1] if found else None
