"""The ``sleap`` kind: train SLEAP pose models with sleap-nn and run them on videos.

Training takes labels (``.slp``/``.pkg.slp``, optionally with a config) or a training job
package exported from SLEAP (``jobs.yaml`` plus one config per model), or the word
``example``. Steps: ``prepare`` (check everything, write configs), one ``train`` per model,
``finish training`` (settle models, read sleap-nn's held-out scores, draw the training card),
then ``predict`` and ``export`` when there is something to predict on, and ``preview`` (a clip
of the predictions, the frames to label next) when a prediction is on a video. Inference is
``prepare``, ``predict``, ``export``, ``preview``. A training reports its models' held-out
scores and its data's fingerprint (:class:`workers.quality.Quality`), so colabot compares it
with an earlier training on the same data.

This module is imported by the bot: it reads small JSON files and never imports sleap-nn,
sleap-io or torch; those run in the job's subprocesses.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from workers.errors import StepFailedError
from workers.jobs import Action, JobSpec, ParamValue
from workers.kinds.base import InputSlot, JobContext, LiveLink, Outcome, Output, Param, Step
from workers.kinds.plans import REQUEST, read_json, write_json
from workers.kinds.sleap.failures import explain_lines
from workers.kinds.sleap.params import (
    INFER_INPUTS,
    INFER_PARAMS,
    TRAIN_INPUTS,
    TRAIN_PARAMS,
    looks_like_override,
    override_key,
    validate,
    view_times,
    views_asked,
)
from workers.kinds.sleap.plan import (
    CHECKPOINT,
    FINISHED,
    FINISHED_MARK,
    HISTORY,
    RESULT,
    STOPPED,
    VIEWS,
    ModelPlan,
    Plan,
    PredictPlan,
    Request,
    load_plan,
    load_result,
    load_views,
)
from workers.kinds.sleap.progress import PredictTracker, TrainingTracker
from workers.logfile import tail_lines
from workers.quality import Quality

TOOLS_MODULE = "workers.kinds.sleap.tools"
STEP_ENV = {
    "NO_COLOR": "1",
    "FORCE_COLOR": "0",
    "HF_HUB_OFFLINE": "1",
    "MPLBACKEND": "Agg",
    "PYTHONUNBUFFERED": "1",
    "COLUMNS": "120",
}
# What a checkpoint keeps of each run folder: enough to continue or to use the model, and
# none of the labels or pictures sleap-nn also writes there.
RUNNING_FILES = (
    "last.ckpt",
    "best.ckpt",
    "training_config.yaml",
    "initial_config.yaml",
    "training_log.csv",
)
FINISHED_FILES = ("best.ckpt", "training_config.yaml", "initial_config.yaml", "training_log.csv")
HELD_OUT_SCORES = ("metrics.val.*.json", "metrics.test.*.json")
"""sleap-nn's held-out scores of a finished model, kept too: a resumed job reports them for
the models it does not train again, on any machine."""


HELP_NOTES = """\
New to SLEAP here? /train sleap example trains on synthetic data and predicts on a new video \
(about a minute on a CPU).
Training input: labels (.slp, or .pkg.slp with the frames inside), with their videos in the \
same folder; or a training job package (.zip) exported from SLEAP, whose jobs.yaml is followed \
model by model (infer=yes also runs its inference jobs). Without config=, a config is made from \
the labels (preset= picks the model type).
Any sleap-nn setting can be changed as key=value, e.g. trainer_config.optimizer.lr=0.0005 or \
model_config.backbone_config.unet.filters=16; unknown keys are refused before training. \
Progress comes step by step (loss, steps/s, ETA); on a cluster once per epoch, unless \
trainer_config.enable_progress_bar=true. /stop <id> ends the current model's training early \
and keeps its best checkpoint; later models still train. /plot <id> shows the loss so far. \
wandb=yes logs the training to Weights & Biases.
Checkpoints (best and last) are kept with the results; /resume <id> continues an interrupted \
training from its last epoch, and models already finished are not trained again.
Each model gets sleap-nn's scores on held-out frames (mOKS, PCK, distances; centroid: F1) on \
a card with its loss, compared with the last training on the same data.
/infer sleap <job id> <video> writes the predictions (.slp), a CSV and an analysis .h5, and \
sends a clip of them drawn on the video and the frames the model is least sure of (an album, \
and a .pkg.slp SLEAP opens as labelling suggestions)."""


class SleapKind:
    """SLEAP pose estimation: training with sleap-nn and inference on videos."""

    name = "sleap"
    summary = "SLEAP animal pose models: train on labels or a training package, then predict"
    actions = frozenset({Action.TRAIN, Action.INFER})
    help_notes = HELP_NOTES

    def inputs(self, action: Action) -> tuple[InputSlot, ...]:
        """Labels (or a package) and a config to train; a model and a video to infer."""
        return TRAIN_INPUTS if action is Action.TRAIN else INFER_INPUTS

    def params(self, action: Action) -> Mapping[str, Param]:
        """The parameters of each action (training also takes dotted config overrides)."""
        return TRAIN_PARAMS if action is Action.TRAIN else INFER_PARAMS

    def validate(self, spec: JobSpec) -> JobSpec:
        """Check what needs no framework: file types, value forms, override keys."""
        return validate(spec)

    # steps --------------------------------------------------------------------------------

    def steps(self, ctx: JobContext) -> Iterator[Step]:
        """Prepare, then train each model and/or predict, as the plan says."""
        work = ctx.scratch_dir
        work.mkdir(parents=True, exist_ok=True)
        (work / RESULT).unlink(missing_ok=True)
        (work / VIEWS).unlink(missing_ok=True)
        write_json(work / REQUEST, _request(ctx))
        yield self._tool_step(ctx, "prepare")
        plan = load_plan(work)
        if plan is None:
            raise StepFailedError("prepare", "the prepare step wrote no plan")
        ctx.notify(plan.summary)
        if ctx.spec.action is Action.TRAIN:
            yield from self._training_steps(ctx, plan)
            yield self._tool_step(ctx, "finish-training")
        for index, prediction in enumerate(plan.predictions, 1):
            yield self._predict_step(ctx, plan, prediction, index)
        if plan.predictions:
            yield self._tool_step(ctx, "export")
        if views := self._views_step(ctx, plan):
            yield views

    def _tool_step(self, ctx: JobContext, command: str) -> Step:
        argv = [ctx.python, "-m", TOOLS_MODULE, command, str(ctx.scratch_dir)]
        # The prepare step picks the device, so on a cluster it runs where the GPU is.
        gpu = command == "prepare" and wants_gpu(ctx)
        return Step(name=command.replace("-", " "), argv=argv, env=dict(STEP_ENV), wants_gpu=gpu)

    def _views_step(self, ctx: JobContext, plan: Plan) -> Step | None:
        """The preview step (a clip, the frames to label next), when a prediction is on a
        video and the job asks for either."""
        clip, suggest = views_asked(ctx.spec.params)
        if not (clip or suggest) or not any(p.on_video for p in plan.predictions):
            return None
        budget, limit = view_times(ctx.param("timeout"))
        argv = [ctx.python, "-m", TOOLS_MODULE, "preview", str(ctx.scratch_dir)]
        argv += ["--budget", f"{budget:g}", "--limit", f"{limit:g}"]
        return Step(name="preview", argv=argv, env=dict(STEP_ENV))

    def _training_steps(self, ctx: JobContext, plan: Plan) -> Iterator[Step]:
        count = len(plan.models)
        for model in plan.models:
            if model.skip:
                continue
            tracker = TrainingTracker(model, count)
            name = f"train {model.head}" + (
                f" (model {model.index} of {count})" if count > 1 else ""
            )
            yield Step(
                name=name,
                argv=[ctx.python, "-m", TOOLS_MODULE, "sleap-nn", "train", model.config],
                env=dict(STEP_ENV),
                cwd=Path(plan.cwd) if plan.cwd else None,
                watch=(Path(model.run_dir) / "training_log.csv",),
                parser=tracker.parse,
                wants_gpu=plan.accelerator != "cpu",
                live=LIVE_LINK,
                stops_when="after its current training step, once it has been validated",
            )
            if name in ctx.stopped_early:
                _mark_stopped(ctx.scratch_dir, model.run_name)
            _mark_finished(ctx.scratch_dir, model.run_name)

    def _predict_step(
        self, ctx: JobContext, plan: Plan, prediction: PredictPlan, index: int
    ) -> Step:
        device = {"gpu": "cuda"}.get(plan.accelerator, plan.accelerator)
        argv = [
            ctx.python,
            "-m",
            "sleap_nn.cli",
            "predict",
            "--gui",
            "-i",
            prediction.data,
            "-o",
            prediction.output,
            "-d",
            device,
        ]
        for model in prediction.models:
            argv += ["-m", model]
        if prediction.only_suggested_frames:
            argv.append("--only_suggested_frames")
        if prediction.tracking:
            argv.append("--tracking")
        if prediction.frames:
            argv += ["--frames", prediction.frames]
        if prediction.batch:
            argv += ["--batch_size", str(prediction.batch)]
        if prediction.peak_threshold is not None:
            argv += ["--peak_threshold", str(prediction.peak_threshold)]
        if prediction.max_instances:
            argv += ["--max_instances", str(prediction.max_instances)]
        many = len(plan.predictions) > 1
        label = f"predict {Path(prediction.data).name}"
        tracker = PredictTracker(f"{label} ({index} of {len(plan.predictions)})" if many else "")
        return Step(
            name=label,
            argv=argv,
            env=dict(STEP_ENV),
            cwd=Path(plan.cwd) if plan.cwd else None,
            parser=tracker.parse,
            wants_gpu=plan.accelerator != "cpu",
        )

    # failures and results -----------------------------------------------------------------

    def explain_failure(self, ctx: JobContext, step: Step, tail: list[str]) -> str | None:
        """The cause, from the step's last lines and the end of its part of the log."""
        return explain_lines([*_step_log(ctx.workdir / "job.log"), *tail])

    def collect(self, ctx: JobContext) -> Outcome:
        """The outputs and summary recorded by the last step."""
        result, views = load_result(ctx.scratch_dir), load_views(ctx.scratch_dir)
        outputs = [
            Output(Path(o.path), o.role, o.label, o.photo, send_as_video=o.video, album=o.album)
            for o in [*result.outputs, *views.outputs]
        ]
        summary = "\n".join(s for s in (result.summary, views.summary) if s)
        return Outcome(
            outputs=outputs,
            summary=summary,
            metrics=dict(result.metrics),
            quality=_quality(result.quality, ctx.spec.params),
        )

    def plot(
        self, workdir: Path, python: str, dest: Path, compare: Path | None = None
    ) -> Step | None:
        """The tools' ``plot``: train and validation loss per epoch, one panel per model;
        with ``compare`` (another SLEAP job's folder) both jobs' curves in each panel."""
        argv = [python, "-m", TOOLS_MODULE, "plot", str(workdir / "work"), str(dest)]
        if compare is not None:
            argv += ["--compare", str(compare / "work")]
        return Step(name="plot", argv=argv, env=dict(STEP_ENV))

    def checkpoint(self, ctx: JobContext) -> Path | None:
        """``work/sleap-resume``: per model, hard links to the files a resume needs.

        A finished model keeps best.ckpt, its configs and its log (and a FINISHED mark); the
        model in training also keeps last.ckpt and the log of earlier attempts. Labels,
        videos and pictures stay out, so it stays small. Links cost no copying here.
        """
        if ctx.spec.action is not Action.TRAIN:
            return None
        plan = load_plan(ctx.scratch_dir)
        if plan is None:
            return None
        finished = set(read_json(ctx.scratch_dir / FINISHED) or [])
        folder = ctx.scratch_dir / CHECKPOINT
        for model in plan.models:
            _refresh_model(folder / model.run_name, model, model.skip or model.run_name in finished)
        if not folder.is_dir() or not any(p.is_file() for p in folder.rglob("*")):
            return None
        return folder


# ------------------------------------------------------------------------------ helpers


def _request(ctx: JobContext) -> Request:
    params: dict[str, ParamValue] = {}
    overrides: dict[str, str] = {}
    for name, value in ctx.spec.params.items():
        if looks_like_override(name):
            overrides[override_key(name)] = str(value)
        else:
            params[name] = value
    return Request(
        action=ctx.spec.action.value,
        workdir=str(ctx.workdir),
        inputs={slot: [str(p) for p in paths] for slot, paths in ctx.inputs.items()},
        params=params,
        overrides=overrides,
        attempt=ctx.job.attempt,
        resume_from=str(ctx.resume_from) if ctx.resume_from else None,
        wandb=dataclasses.asdict(ctx.wandb) if ctx.wandb is not None else {},
        cache=str(ctx.cache_dir / "sleap") if ctx.cache_dir is not None else "",
    )


def _quality(recorded: Mapping[str, Any], params: Mapping[str, ParamValue]) -> Quality | None:
    """The held-out scores and data fingerprint the finish step recorded, with the job's
    params (None after inference, which records none)."""
    if not recorded:
        return None
    return dataclasses.replace(Quality.from_dict(recorded), params=dict(params))


def wants_gpu(ctx: JobContext) -> bool:
    """Whether the job may use a GPU (device=auto or gpu): a cluster then reserves one."""
    return str(ctx.param("device") or "auto") != "cpu"


PROGRESS_FLAG = "--colabot-progress"
CONTROL_FLAG = "--colabot-control"
"""The training wrapper's own arguments (it takes them out before sleap-nn reads the rest)."""
STOP_COMMAND = {"command": "stop"}
"""The one command the training wrapper acts on, and only when a message is exactly this."""


def live_args(progress_address: str, control_address: str) -> list[str]:
    """The arguments that connect training to colabot's live sockets: its progress
    publisher and its training controller (colabot's, in place of sleap-nn's)."""
    return [f"{PROGRESS_FLAG}={progress_address}", f"{CONTROL_FLAG}={control_address}"]


# The training ends at the end of the batch that hears this.
LIVE_LINK = LiveLink(args=live_args, stop_command=json.dumps(STOP_COMMAND))


def _mark_stopped(work: Path, run_name: str) -> None:
    stopped = read_json(work / STOPPED) or []
    if run_name not in stopped:
        write_json(work / STOPPED, [*stopped, run_name])


def _mark_finished(work: Path, run_name: str) -> None:
    done = read_json(work / FINISHED) or []
    if run_name not in done:
        write_json(work / FINISHED, [*done, run_name])


def _step_log(log: Path, lines: int = 400) -> list[str]:
    """The log lines of the last step (after its ``=== colabot step`` marker)."""
    found = tail_lines(log, lines)
    for i in range(len(found) - 1, -1, -1):
        if found[i].startswith("=== colabot step:"):
            return found[i + 1 :]
    return found


def _link(source: Path, dest: Path) -> None:
    """Make ``dest`` a hard link to ``source`` unless it already is one."""
    try:
        if dest.exists() and os.path.samestat(source.stat(), dest.stat()):
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".link")
        tmp.unlink(missing_ok=True)
        os.link(source, tmp)
        tmp.replace(dest)
    except OSError:
        return


def _refresh_model(folder: Path, model: ModelPlan, finished: bool) -> None:
    run_dir = Path(model.run_dir if not model.skip else model.final_dir)
    names = list(FINISHED_FILES if finished else RUNNING_FILES)
    if finished:
        names += sorted({p.name for pattern in HELD_OUT_SCORES for p in run_dir.glob(pattern)})
    for name in names:
        if (run_dir / name).is_file():
            _link(run_dir / name, folder / name)
    if model.history and Path(model.history).is_file():
        _link(Path(model.history), folder / HISTORY)
    if finished and folder.is_dir():
        (folder / "last.ckpt").unlink(missing_ok=True)
        (folder / FINISHED_MARK).touch()
