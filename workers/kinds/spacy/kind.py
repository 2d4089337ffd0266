"""The ``spacy`` kind: train spaCy pipelines (from a config, a folder, a zip or a spaCy project)
and run them over texts.

This module is imported by the bot process, so it never imports spaCy: the work happens in
the kind's tools (``python -m workers.kinds.spacy.tools prepare|infer|spacy``) and in the
training logger (``tools/logger.py``). The kind writes the request, plans those subprocesses
and collects their files; reading their lines is ``progress``'s job, the reasons of failures
``failures``'s and the summaries ``report``'s.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from workers.jobs import Action, JobSpec
from workers.kinds.base import InputSlot, JobContext, Outcome, Output, Param, Step
from workers.kinds.plans import REQUEST, write_json
from workers.kinds.spacy.failures import explain_spacy_failure
from workers.kinds.spacy.params import (
    INFER_INPUTS,
    INFER_PARAMS,
    TRAIN_INPUTS,
    TRAIN_PARAMS,
    is_override_key,
    validate_infer,
    validate_train,
)
from workers.kinds.spacy.plan import (
    BEST,
    CARD,
    INFERENCE_STATS,
    LAST,
    LOGGER_NAME,
    PACKAGE_DIR,
    PREDICTIONS,
    TRAINING_DIR,
    TRAINING_LOG,
    Request,
    TrainPlan,
    read_plan,
)
from workers.kinds.spacy.progress import (
    InferenceProgress,
    ProjectProgress,
    TrainingProgress,
    is_number,
    stage_parser,
)
from workers.kinds.spacy.report import (
    format_scores,
    inference_summary,
    main_score_keys,
    read_performance,
    read_scores,
    read_training_log,
    training_summary,
)
from workers.quality import Quality

TOOLS_MODULE = "workers.kinds.spacy.tools"
STOP_FILE = "stop-early"
CHAIN_LOGGER = "spacy.ChainLogger.v1"
LOGGER_FILE = Path(__file__).resolve().parent / "tools" / "logger.py"

# Overrides the machine's environment may hold would beat the ones colabot passes; the colour
# codes and icons of spaCy's console output only get in the way of reading it.
STEP_ENV = {
    "SPACY_CONFIG_OVERRIDES": "",
    "WEASEL_CONFIG_OVERRIDES": "",
    "WASABI_NO_PRETTY": "1",
    "ANSI_COLORS_DISABLED": "1",
}
HELP_NOTES = """\
Config overrides: any dotted key, e.g. training.dropout=0.2 or \
components.ner.model.hidden_width=64. Keys are checked against the config before training \
starts. In a spaCy project, vars.NAME=value sets a project variable.
Without train= and dev=, a folder or zip is searched for train.spacy and dev.spacy (also \
training.spacy, valid.spacy, corpus/...). A folder or zip with a project.yml runs as a spaCy \
project: its assets must already be inside (nothing is downloaded); the default workflow is \
"all", else the first one.
Progress comes at each evaluation: step, epoch, losses, scores and the best score so far. \
/stop <id> ends training at the next evaluation, keeping model-best and model-last; /plot <id> \
draws the losses and scores so far. wandb=yes logs the training to Weights & Biases (spaCy's \
WandbLogger, chained with colabot's own logger).
Results: model-best (use it with /infer spacy <job id> <texts>), model-last, the training log, \
a card (the curves and model-best's dev scores), and a wheel with package=yes. The summary \
gives each component's dev scores from meta.json (ner: F, P, R; textcat: its score, P, R, \
AUC) and each label's P, R and F, naming the weakest label.
/resume trains again from model-last's weights. spaCy cannot resume the optimizer state, so \
the optimizer and the step counter start again.
Inference writes predictions.jsonl: per input its id, text, entities and cats. The id is the \
"id" field of a .jsonl line, else the line number (.txt, .jsonl) or the position from 0 (.spacy). \
suggest=N lists the N texts the model is least sure of, to review (default 10, 0: none): by \
the margin between the two likeliest categories when the pipeline has a textcat, else by the \
NER's beam-search probability (approximate: greedy-trained NER is often overconfident).
The GPU needs CuPy: pip install "spacy[cuda12x]"."""


# ------------------------------------------------------------------------------ the kind


class SpacyKind:
    """spaCy training (config, folder, zip, project or the built-in example) and inference."""

    name = "spacy"
    summary = "spaCy pipelines: train from a config or a spaCy project; tag texts with a model"
    actions = frozenset({Action.TRAIN, Action.INFER})
    help_notes = HELP_NOTES

    def inputs(self, action: Action) -> tuple[InputSlot, ...]:
        """Training reads a config and data; inference a model and texts."""
        return TRAIN_INPUTS if action is Action.TRAIN else INFER_INPUTS

    def params(self, action: Action) -> Mapping[str, Param]:
        """Device and training or batching settings."""
        return TRAIN_PARAMS if action is Action.TRAIN else INFER_PARAMS

    def validate(self, spec: JobSpec) -> JobSpec:
        """Check inputs and parameters; ``example`` as the config becomes example=yes."""
        if spec.action is Action.TRAIN:
            return validate_train(spec)
        return validate_infer(spec)

    # steps ------------------------------------------------------------------------------

    def steps(self, ctx: JobContext) -> Iterator[Step]:
        """Prepare, then train (or run the project's commands), package and try the model."""
        write_json(ctx.scratch_dir / REQUEST, request_of(ctx))
        if ctx.spec.action is Action.INFER:
            yield self._inference_step(ctx)
            return
        # The prepare step picks the device, so on a cluster it runs where the GPU is.
        yield Step(
            "prepare",
            tools_argv(ctx, "prepare"),
            env=dict(STEP_ENV),
            parser=stage_parser,
            wants_gpu=wants_gpu(ctx),
        )
        plan = read_plan(ctx.scratch_dir)
        for note in plan.notes:
            ctx.notify(note)
        if plan.mode == "project":
            yield from self._project_steps(ctx, plan)
            return
        stop_file = ctx.scratch_dir / STOP_FILE
        stop_file.unlink(missing_ok=True)  # a stop asked of an earlier attempt
        yield Step(
            "train",
            train_argv(ctx.python, plan, ctx.outputs_dir / TRAINING_LOG, stop_file),
            cwd=Path(plan.cwd) if plan.cwd else None,
            parser=TrainingProgress().parse,
            wants_gpu=plan.gpu_id >= 0,
            stop_file=stop_file,
            stops_when="at its next evaluation, keeping model-best and model-last",
            env={**STEP_ENV, **_wandb_env(ctx, plan)},
        )
        yield Step("training card", tools_argv(ctx, "card"), env=dict(STEP_ENV))
        if ctx.param("package"):
            yield Step("package", package_argv(ctx, plan), env=dict(STEP_ENV))
        if plan.example_texts:
            yield self._inference_step(ctx, announce=False)

    def _project_steps(self, ctx: JobContext, plan: TrainPlan) -> Iterator[Step]:
        count = len(plan.commands)
        for index, command in enumerate(plan.commands, 1):
            yield Step(
                f"project command {command} ({index} of {count})",
                [ctx.python, "-m", TOOLS_MODULE, "weasel", "run", command, plan.project_dir],
                env={**STEP_ENV, **plan.env},
                cwd=Path(plan.project_dir),
                parser=ProjectProgress(command, index, count).parse,
                wants_gpu=plan.gpu_id >= 0,
            )

    def _inference_step(self, ctx: JobContext, *, announce: bool = True) -> Step:
        """Run a model over texts; the device is announced unless training did."""
        parser = InferenceProgress(ctx, announce=announce).parse
        return Step(
            "inference",
            tools_argv(ctx, "infer"),
            env=dict(STEP_ENV),
            parser=parser,
            wants_gpu=wants_gpu(ctx),
        )

    def plot(
        self, workdir: Path, python: str, dest: Path, compare: Path | None = None
    ) -> Step | None:
        """The tools' ``plot``: each component's loss and the scores, by step (with
        ``compare``'s beside them, each job named by its folder)."""
        argv = [python, "-m", TOOLS_MODULE, "plot", str(workdir / "work"), str(dest)]
        if compare is not None:
            argv += ["--compare", str(compare / "work")]
        return Step("plot", argv, env=dict(STEP_ENV))

    # results ----------------------------------------------------------------------------

    def explain_failure(self, ctx: JobContext, step: Step, tail: list[str]) -> str | None:
        """Name the cause of the common spaCy, weasel and colabot-check failures."""
        return explain_spacy_failure(tail)

    def collect(self, ctx: JobContext) -> Outcome:
        """Models, training log, wheel and predictions, with a summary of the scores."""
        if ctx.spec.action is Action.INFER:
            return self._collect_inference(ctx)
        plan = read_plan(ctx.scratch_dir)
        if plan.mode == "project":
            return self._collect_project(ctx, plan)
        return self._collect_training(ctx, plan)

    def _collect_inference(self, ctx: JobContext) -> Outcome:
        stats = _read_json(ctx.scratch_dir / INFERENCE_STATS)
        metrics = {"docs": float(stats.get("docs", 0)), "errors": float(stats.get("errors", 0))}
        outputs = [Output(ctx.outputs_dir / PREDICTIONS, "predictions", PREDICTIONS)]
        return Outcome(outputs=outputs, summary=inference_summary(stats), metrics=metrics)

    def _collect_training(self, ctx: JobContext, plan: TrainPlan) -> Outcome:
        training = Path(plan.output)
        events = read_training_log(ctx.outputs_dir / TRAINING_LOG)
        summary, metrics = training_summary(events, read_performance(training / BEST), plan.device)
        scores = read_scores(training / BEST)
        summary += "\n" + "\n".join(scores.lines())
        if plan.resumed_from:
            summary += "\n(continued from the weights of the earlier attempt's model-last)"
        outputs = [
            Output(training / BEST, "model", BEST),
            Output(training / LAST, "checkpoint", LAST),
            Output(ctx.outputs_dir / TRAINING_LOG, "metrics", "training log"),
        ]
        if (ctx.outputs_dir / CARD).is_file():
            outputs.append(
                Output(ctx.outputs_dir / CARD, "plot", "training card", send_as_photo=True)
            )
        wheels = sorted((ctx.outputs_dir / PACKAGE_DIR).glob("*/dist/*.whl"))
        if wheels:
            outputs.append(Output(wheels[-1], "package", wheels[-1].name))
            summary += f"\nwheel: {wheels[-1].name} (pip install it, then spacy.load it)"
        if plan.example_texts:
            outputs.append(Output(ctx.outputs_dir / PREDICTIONS, "predictions", PREDICTIONS))
            summary += "\n" + inference_summary(_read_json(ctx.scratch_dir / INFERENCE_STATS))
            summary += f"\nNext: /infer spacy {ctx.job.id} <your texts>"
        quality = Quality(plan.data_fingerprint, scores.models, dict(ctx.spec.params))
        return Outcome(outputs=outputs, summary=summary, metrics=metrics, quality=quality)

    def _collect_project(self, ctx: JobContext, plan: TrainPlan) -> Outcome:
        root = Path(plan.project_dir)
        models = project_models(root, plan.project_outputs)
        outputs: list[Output] = []
        names: set[str] = set()
        seen: set[Path] = set()
        for role, label in (("model", BEST), ("checkpoint", LAST)):
            if label in models:
                outputs.append(Output(models[label], role, label))
                names.add(models[label].name)
                seen.add(models[label])
        for relative in plan.project_outputs:
            path = root / relative
            if path.exists() and path not in seen and path.name not in names:
                outputs.append(Output(path, "output", relative))
                names.add(path.name)
                seen.add(path)
        lines = [f"spaCy project: ran {plan.workflow} ({', '.join(plan.commands)})."]
        metrics: dict[str, float] = {}
        quality = None
        if BEST in models:
            performance = read_performance(models[BEST])
            metrics = {k: float(v) for k, v in performance.items() if is_number(v)}
            keys = main_score_keys(performance, {})
            shown = models[BEST].relative_to(root)
            lines.append(f"{shown}: {format_scores(performance, keys) or 'no scores'}")
            scores = read_scores(models[BEST])
            lines += scores.lines()
            quality = Quality(plan.data_fingerprint, scores.models, dict(ctx.spec.params))
        kept = [o.label for o in outputs if o.role == "output"]
        if kept:
            lines.append("outputs: " + ", ".join(kept))
        summary = "\n".join(lines)
        return Outcome(outputs=outputs, summary=summary, metrics=metrics, quality=quality)

    def checkpoint(self, ctx: JobContext) -> Path | None:
        """model-last of this job's training, when one was saved."""
        if ctx.spec.action is not Action.TRAIN:
            return None
        last = ctx.outputs_dir / TRAINING_DIR / LAST
        if (last / "meta.json").exists():
            return last
        try:
            plan = read_plan(ctx.scratch_dir)
        except (OSError, ValueError):
            return None
        if plan.mode == "project":
            return project_models(Path(plan.project_dir), plan.project_outputs).get(LAST)
        return None


def request_of(ctx: JobContext) -> Request:
    """The request the tools read: the job's inputs, settings and resume point."""
    spec = ctx.spec

    def path(slot: str) -> str | None:
        return str(ctx.input(slot)) if slot in ctx.inputs else None

    def number(name: str) -> int | None:
        value = ctx.param(name)
        return None if value is None else int(value)

    return Request(
        action=spec.action.value,
        work=str(ctx.scratch_dir),
        outputs=str(ctx.outputs_dir),
        gpu=str(ctx.param("gpu")),
        example=bool(ctx.param("example")),
        config=path("config"),
        train=path("train"),
        dev=path("dev"),
        max_steps=number("max_steps"),
        eval_frequency=number("eval_frequency"),
        workflow=None if ctx.param("workflow") is None else str(ctx.param("workflow")),
        overrides=[[key, str(value)] for key, value in spec.params.items() if is_override_key(key)],
        resume_from=str(ctx.resume_from) if ctx.resume_from is not None else None,
        package=bool(ctx.param("package")),
        model=path("model"),
        texts=path("texts"),
        batch_size=int(ctx.param("batch_size") or INFER_PARAMS["batch_size"].default or 64),
        text_key=str(ctx.param("text_key") or INFER_PARAMS["text_key"].default),
        suggest=number("suggest") or 0,
        wandb=dataclasses.asdict(ctx.wandb) if ctx.wandb is not None else {},
    )


def _wandb_env(ctx: JobContext, plan: TrainPlan) -> dict[str, str]:
    """Where the W&B run folder goes (with the outputs), and offline when W&B refused it."""
    if ctx.wandb is None:
        return {}
    env = {"WANDB_DIR": str(ctx.outputs_dir)}
    if plan.wandb_offline:
        env.update(WANDB_MODE="offline", WANDB_API_KEY="")
    return env


def wants_gpu(ctx: JobContext) -> bool:
    """Whether the job may use a GPU (gpu=auto or a number): a cluster then reserves one."""
    return str(ctx.param("gpu") or "auto").strip().lower() != "cpu"


def tools_argv(ctx: JobContext, command: str) -> list[str]:
    """One of the kind's tools, working in the job's scratch folder."""
    return [ctx.python, "-m", TOOLS_MODULE, command, str(ctx.scratch_dir)]


def train_argv(
    python: str, plan: TrainPlan, log_path: Path, stop_file: Path | None = None
) -> list[str]:
    """The ``spacy train`` command line of a plan, with colabot's progress logger (which
    also ends training at an evaluation once ``stop_file`` appears)."""
    settings: dict[str, Any] = {"@loggers": LOGGER_NAME, "log_path": str(log_path)}
    if stop_file is not None:
        settings["stop_path"] = str(stop_file)
    if plan.wandb_logger:
        # W&B's logger prints nothing, and colabot's comes second so that W&B has logged
        # an evaluation before a stop-early request ends training there.
        settings = {"@loggers": CHAIN_LOGGER, "logger1": plan.wandb_logger, "logger2": settings}
    logger = json.dumps(settings)
    argv = [python, "-m", TOOLS_MODULE, "spacy"]
    if plan.block_torch:
        argv.append("--no-torch")
    argv += [
        "train",
        plan.config,
        "--output",
        plan.output,
        "--paths.train",
        plan.train,
        "--paths.dev",
        plan.dev,
        "--gpu-id",
        str(plan.gpu_id),
        "--code",
        str(LOGGER_FILE),
        "--training.logger",
        logger,
    ]
    for key, value in plan.overrides:
        argv += [f"--{key}", value]
    return argv


def package_argv(ctx: JobContext, plan: TrainPlan) -> list[str]:
    """``spacy package`` for model-best, building a wheel."""
    return [
        ctx.python,
        "-m",
        TOOLS_MODULE,
        "spacy",
        "--no-torch",
        "package",
        str(Path(plan.output) / BEST),
        str(ctx.outputs_dir / PACKAGE_DIR),
        "--name",
        f"colabot_job{ctx.job.id}",
        "--build",
        "wheel",
        "--force",
    ]


def project_models(root: Path, declared: list[str]) -> dict[str, Path]:
    """model-best and model-last among a project's declared outputs (or its training folder).

    Looks only at the declared outputs, their parents and ``training/``, so it stays cheap.
    """
    candidates: list[Path] = [root / "training"]
    for relative in declared:
        path = root / relative
        candidates += [path, path.parent]
    found: dict[str, Path] = {}
    for folder in candidates:
        for name in (BEST, LAST):
            for path in (folder, folder / name):
                if path.name == name and (path / "meta.json").is_file() and name not in found:
                    found[name] = path
    return found


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
