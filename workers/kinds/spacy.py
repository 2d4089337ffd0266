"""The ``spacy`` kind: train spaCy pipelines (from a config, a folder, a zip or a spaCy project)
and run them over texts.

This module is imported by the bot process, so it never imports spaCy: the work happens in
``workers.kinds.spacy_tools`` (prepare, inference), ``workers.kinds.spacy_train`` (spaCy's own
command line) and ``workers.kinds.spacy_logger`` (progress lines during training). The kind
validates requests, plans those subprocesses and collects their files; reading their lines is
``spacy_progress``'s job, and the chat's explanations and summaries are ``spacy_report``'s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from workers.errors import SpecError
from workers.jobs import Action, JobSpec, ParamValue
from workers.kinds.base import (
    InputSlot,
    JobContext,
    Outcome,
    Output,
    Param,
    Step,
    validate_common,
    validate_with_example,
)
from workers.kinds.spacy_progress import (
    InferenceProgress,
    ProjectProgress,
    TrainingProgress,
    is_number,
    stage_parser,
)
from workers.kinds.spacy_protocol import (
    BEST,
    INFERENCE_STATS,
    LAST,
    LOGGER_NAME,
    PACKAGE_DIR,
    PLAN_FILE,
    PREDICTIONS,
    TEXT_SUFFIXES,
    TRAINING_DIR,
    TRAINING_LOG,
    TrainPlan,
    read_plan,
)
from workers.kinds.spacy_report import (
    explain_spacy_failure,
    format_scores,
    inference_summary,
    main_score_keys,
    read_performance,
    read_training_log,
    training_summary,
)
from workers.sources import local_file_name

TOOLS_MODULE = "workers.kinds.spacy_tools"
CLI_MODULE = "workers.kinds.spacy_train"
LOGGER_FILE = Path(__file__).resolve().with_name("spacy_logger.py")

# Overrides the machine's environment may hold would beat the ones colabot passes; the colour
# codes and icons of spaCy's console output only get in the way of reading it.
STEP_ENV = {
    "SPACY_CONFIG_OVERRIDES": "",
    "WEASEL_CONFIG_OVERRIDES": "",
    "WASABI_NO_PRETTY": "1",
    "ANSI_COLORS_DISABLED": "1",
}
OVERRIDE_KEY = re.compile(r"[A-Za-z_][\w-]*(?:\.[\w-]+)+")
RESERVED_OVERRIDES = {
    "paths.train": "give the training data as the train= input",
    "paths.dev": "give the evaluation data as the dev= input",
    "training.logger": "colabot sets the training logger to report progress",
}
SAME_AS_PARAM = {"training.max_steps": "max_steps", "training.eval_frequency": "eval_frequency"}

GPU_PARAM = Param(str, "auto", "auto (the GPU when CuPy and a GPU are there), cpu, or a GPU number")
TRAIN_INPUTS = (
    InputSlot(
        "config",
        "a spaCy config (.cfg); or a folder or zip with a config and its data, or with a spaCy "
        "project (project.yml); or the word example",
    ),
    InputSlot("train", "training data (.spacy); looked up in the folder or zip if left out", False),
    InputSlot("dev", "evaluation data (.spacy); looked up in the folder or zip if left out", False),
)
INFER_INPUTS = (
    InputSlot("model", "a finished spaCy training job's id, or a trained pipeline folder or zip"),
    InputSlot("texts", '.txt (one text per line), .jsonl (with a "text" field) or .spacy'),
)
TRAIN_PARAMS: dict[str, Param] = {
    "gpu": GPU_PARAM,
    "max_steps": Param(
        int,
        None,
        "training steps (default: the config's; 0: no limit)",
        minimum=0,
        maximum=100_000_000,
    ),
    "eval_frequency": Param(
        int, None, "evaluate every this many steps", minimum=1, maximum=10_000_000
    ),
    "package": Param(bool, False, "also build an installable wheel of model-best"),
    "workflow": Param(str, None, "spaCy projects: the workflow or command to run"),
    "example": Param(bool, False, "train on generated example data (/train spacy example)"),
}
INFER_PARAMS: dict[str, Param] = {
    "gpu": GPU_PARAM,
    "batch_size": Param(int, 64, "texts per batch", minimum=1, maximum=100_000),
    "text_key": Param(str, "text", "the .jsonl field that holds the text"),
}

HELP_NOTES = """\
Config overrides: any dotted key, e.g. training.dropout=0.2 or \
components.ner.model.hidden_width=64. Keys are checked against the config before training \
starts. In a spaCy project, vars.NAME=value sets a project variable.
Without train= and dev=, a folder or zip is searched for train.spacy and dev.spacy (also \
training.spacy, valid.spacy, corpus/...). A folder or zip with a project.yml runs as a spaCy \
project: its assets must already be inside (nothing is downloaded); the default workflow is \
"all", else the first one.
Progress comes at each evaluation: step, epoch, losses, scores and the best score so far.
Results: model-best (use it with /infer spacy <job id> <texts>), model-last, the training log, \
and a wheel with package=yes.
/resume trains again from model-last's weights. spaCy cannot resume the optimizer state, so \
the optimizer and the step counter start again.
Inference writes predictions.jsonl: per input its id, text, entities and cats. The id is the \
"id" field of a .jsonl line, else the line number (.txt, .jsonl) or the position from 0 (.spacy).
The GPU needs CuPy: pip install "spacy[cuda12x]"."""


# ------------------------------------------------------------------------- validation


def is_override_key(name: str) -> bool:
    """Whether a parameter name is a dotted config (or project variable) override."""
    return OVERRIDE_KEY.fullmatch(name) is not None


def check_gpu_value(value: ParamValue | None) -> None:
    """Refuse a gpu= value that is not auto, cpu or a GPU number."""
    text = str(value).strip().lower()
    if text not in ("auto", "cpu") and not text.isdigit():
        raise SpecError("params.gpu", f"must be auto, cpu or a GPU number, got {value!r}")


def _validate_train(spec: JobSpec) -> JobSpec:
    clean, example = validate_with_example(
        spec, TRAIN_INPUTS, TRAIN_PARAMS, extra_param=is_override_key
    )
    if example and set(clean.inputs) & {"config", "train", "dev"}:
        raise SpecError("inputs", "the example brings its own config and data; give no inputs")
    check_gpu_value(clean.params.get("gpu"))
    for key, value in clean.params.items():
        if not is_override_key(key):
            continue
        if key in RESERVED_OVERRIDES:
            raise SpecError(f"params.{key}", RESERVED_OVERRIDES[key])
        if key in SAME_AS_PARAM and SAME_AS_PARAM[key] in clean.params:
            raise SpecError(f"params.{key}", f"give either {key} or {SAME_AS_PARAM[key]}")
        if str(value).startswith("--"):
            raise SpecError(f"params.{key}", "a value may not start with --")
    name = local_file_name(clean.inputs.get("config", ""))
    if name is not None and name.lower().endswith(".cfg"):
        for slot in ("train", "dev"):
            if slot not in clean.inputs:
                raise SpecError(
                    f"inputs.{slot}",
                    f"missing: with a single .cfg config, give {slot}=<.spacy file> "
                    "(or send a folder or zip that holds the config and the data)",
                )
    return clean


def _validate_infer(spec: JobSpec) -> JobSpec:
    clean = validate_common(spec, INFER_INPUTS, INFER_PARAMS)
    check_gpu_value(clean.params.get("gpu"))
    name = local_file_name(clean.inputs.get("texts", ""))
    suffix = PurePosixPath(name).suffix.lower() if name else ""
    if suffix and suffix not in TEXT_SUFFIXES and suffix != ".zip":
        raise SpecError("inputs.texts", f"must be a .txt, .jsonl or .spacy file, got {name}")
    return clean


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
            return _validate_train(spec)
        return _validate_infer(spec)

    # steps ------------------------------------------------------------------------------

    def steps(self, ctx: JobContext) -> Iterator[Step]:
        """Prepare, then train (or run the project's commands), package and try the model."""
        if ctx.spec.action is Action.INFER:
            model, texts = ctx.input("model"), ctx.input("texts")
            yield self._inference_step(ctx, model, texts, str(ctx.param("gpu")))
            return
        yield Step("prepare", self._prepare_argv(ctx), env=dict(STEP_ENV), parser=stage_parser)
        plan = read_plan(ctx)
        for note in plan.notes:
            ctx.notify(note)
        if plan.mode == "project":
            yield from self._project_steps(ctx, plan)
            return
        yield Step(
            "train",
            train_argv(ctx.python, plan, ctx.outputs_dir / TRAINING_LOG),
            env=dict(STEP_ENV),
            cwd=Path(plan.cwd) if plan.cwd else None,
            parser=TrainingProgress().parse,
        )
        if ctx.param("package"):
            yield Step("package", package_argv(ctx, plan), env=dict(STEP_ENV))
        if plan.example_texts:
            model = Path(plan.output) / BEST
            texts = Path(plan.example_texts)
            gpu = str(plan.gpu_id) if plan.gpu_id >= 0 else "cpu"
            yield self._inference_step(ctx, model, texts, gpu, announce=False)

    def _prepare_argv(self, ctx: JobContext) -> list[str]:
        argv = [
            ctx.python,
            "-m",
            TOOLS_MODULE,
            "prepare",
            "--plan",
            str(ctx.scratch_dir / PLAN_FILE),
            "--work",
            str(ctx.scratch_dir),
            "--output",
            str(ctx.outputs_dir / TRAINING_DIR),
            "--gpu",
            str(ctx.param("gpu")),
        ]
        if ctx.param("example"):
            argv.append("--example")
        if ctx.param("package"):
            argv += ["--package-dir", str(ctx.outputs_dir / PACKAGE_DIR)]
        for slot in ("config", "train", "dev"):
            if slot in ctx.inputs:
                argv += [f"--{slot}", str(ctx.input(slot))]
        for name in ("max_steps", "eval_frequency", "workflow"):
            value = ctx.param(name)
            if value is not None:
                argv += [f"--{name.replace('_', '-')}", str(value)]
        for key, value in ctx.spec.params.items():
            if is_override_key(key):
                argv += ["--override", f"{key}={value}"]
        if ctx.resume_from is not None:
            argv += ["--resume-from", str(ctx.resume_from)]
        return argv

    def _project_steps(self, ctx: JobContext, plan: TrainPlan) -> Iterator[Step]:
        count = len(plan.commands)
        for index, command in enumerate(plan.commands, 1):
            yield Step(
                f"project command {command} ({index} of {count})",
                [ctx.python, "-m", "weasel", "run", command, plan.project_dir],
                env={**STEP_ENV, **plan.env},
                cwd=Path(plan.project_dir),
                parser=ProjectProgress(command, index, count).parse,
            )

    def _inference_step(
        self, ctx: JobContext, model: Path, texts: Path, gpu: str, *, announce: bool = True
    ) -> Step:
        """Run the model over the texts; the device is announced unless training did."""
        argv = [
            ctx.python,
            "-m",
            TOOLS_MODULE,
            "infer",
            "--model",
            str(model),
            "--texts",
            str(texts),
            "--out",
            str(ctx.outputs_dir / PREDICTIONS),
            "--stats",
            str(ctx.scratch_dir / INFERENCE_STATS),
            "--work",
            str(ctx.scratch_dir),
            "--gpu",
            gpu,
            "--batch-size",
            str(ctx.param("batch_size") or INFER_PARAMS["batch_size"].default),
            "--text-key",
            str(ctx.param("text_key") or INFER_PARAMS["text_key"].default),
        ]
        parser = InferenceProgress(ctx, announce=announce).parse
        return Step("inference", argv, env=dict(STEP_ENV), parser=parser)

    # results ----------------------------------------------------------------------------

    def explain_failure(self, ctx: JobContext, step: Step, tail: list[str]) -> str | None:
        """Name the cause of the common spaCy, weasel and colabot-check failures."""
        return explain_spacy_failure(tail)

    def collect(self, ctx: JobContext) -> Outcome:
        """Models, training log, wheel and predictions, with a summary of the scores."""
        if ctx.spec.action is Action.INFER:
            return self._collect_inference(ctx)
        plan = read_plan(ctx)
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
        if plan.resumed_from:
            summary += "\n(continued from the weights of the earlier attempt's model-last)"
        outputs = [
            Output(training / BEST, "model", BEST),
            Output(training / LAST, "checkpoint", LAST),
            Output(ctx.outputs_dir / TRAINING_LOG, "metrics", "training log"),
        ]
        wheels = sorted((ctx.outputs_dir / PACKAGE_DIR).glob("*/dist/*.whl"))
        if wheels:
            outputs.append(Output(wheels[-1], "package", wheels[-1].name))
            summary += f"\nwheel: {wheels[-1].name} (pip install it, then spacy.load it)"
        if plan.example_texts:
            outputs.append(Output(ctx.outputs_dir / PREDICTIONS, "predictions", PREDICTIONS))
            summary += "\n" + inference_summary(_read_json(ctx.scratch_dir / INFERENCE_STATS))
            summary += f"\nNext: /infer spacy {ctx.job.id} <your texts>"
        return Outcome(outputs=outputs, summary=summary, metrics=metrics)

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
        if BEST in models:
            performance = read_performance(models[BEST])
            metrics = {k: float(v) for k, v in performance.items() if is_number(v)}
            keys = main_score_keys(performance, {})
            shown = models[BEST].relative_to(root)
            lines.append(f"{shown}: {format_scores(performance, keys) or 'no scores'}")
        kept = [o.label for o in outputs if o.role == "output"]
        if kept:
            lines.append("outputs: " + ", ".join(kept))
        return Outcome(outputs=outputs, summary="\n".join(lines), metrics=metrics)

    def checkpoint(self, ctx: JobContext) -> Path | None:
        """model-last of this job's training, when one was saved."""
        if ctx.spec.action is not Action.TRAIN:
            return None
        last = ctx.outputs_dir / TRAINING_DIR / LAST
        if (last / "meta.json").exists():
            return last
        try:
            plan = read_plan(ctx)
        except (OSError, ValueError):
            return None
        if plan.mode == "project":
            return project_models(Path(plan.project_dir), plan.project_outputs).get(LAST)
        return None


def train_argv(python: str, plan: TrainPlan, log_path: Path) -> list[str]:
    """The ``spacy train`` command line of a plan, with colabot's progress logger."""
    logger = json.dumps({"@loggers": LOGGER_NAME, "log_path": str(log_path)})
    argv = [python, "-m", CLI_MODULE]
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
        CLI_MODULE,
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
