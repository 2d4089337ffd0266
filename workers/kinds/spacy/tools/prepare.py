"""The prepare step: turn a training request into a plan. It unpacks zips, finds the config
and the data, checks them (the config parses, overrides name real settings, .spacy files are
DocBins, a project's assets are in place), picks the device and, on /resume, writes a config
that starts from the saved weights.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workers.kinds.spacy.plan import WANDB_LOGGER, Request, TrainPlan, emit
from workers.kinds.spacy.tools.config import check_config, parse_override_value, write_resume_config
from workers.kinds.spacy.tools.device import (
    block_torch,
    choose_device,
    device_name,
    needs_torch,
    probe_gpu,
)
from workers.kinds.spacy.tools.errors import ToolError
from workers.kinds.spacy.tools.example import make_example
from workers.kinds.spacy.tools.files import (
    DEV_NAMES,
    DEV_WORDS,
    TRAIN_NAMES,
    TRAIN_WORDS,
    check_corpus,
    data_files,
    find_config,
    find_corpus,
    materialise,
)
from workers.kinds.spacy.tools.project import (
    asset_problems,
    choose_workflow,
    declared_outputs,
    load_project,
    missing_dependencies,
    override_string,
    read_project_yml,
)
from workers.quality import fingerprint
from workers.safety.paths import Refused, join_inside
from workers.wandb.login import offline_note, rejected_key


def prepare(request: Request) -> TrainPlan:
    """Check a training request and decide how to run it."""
    work = request.work_dir
    work.mkdir(parents=True, exist_ok=True)
    overrides = [(key, value) for key, value in request.overrides]
    if request.example:
        emit("stage", text="generating the example data and config")
        block_torch()
        root = make_example(work / "example")
    else:
        emit("stage", text="checking the config and data")
        if request.config is None:
            raise ToolError("no config: give a .cfg file, a folder or a zip")
        root = materialise(Path(request.config), work, "config-input")
    if root.is_file() and root.name == "project.yml":
        root = root.parent
    if root.is_dir() and (root / "project.yml").is_file():
        return prepare_project(request, root, overrides)
    if request.workflow:
        raise ToolError("workflow= is for spaCy projects, and this input has no project.yml")
    return prepare_config(request, root, overrides)


def prepare_config(request: Request, root: Path, overrides: list[tuple[str, str]]) -> TrainPlan:
    """The plan for training from a config (a file, or a folder with config and data)."""
    folder = root if root.is_dir() else None
    config = find_config(root) if folder else root
    if config.suffix.lower() != ".cfg":
        raise ToolError(f"{config.name} is not a spaCy config (.cfg), folder or zip")
    train = _corpus(request.train, folder, request.work_dir, "train")
    dev = _corpus(request.dev, folder, request.work_dir, "dev")
    for key, value in _step_settings(request):
        if value is not None:
            overrides.append((f"training.{key}", str(value)))
    parsed = check_config(config, overrides, train, dev)
    if request.package_dir is not None:
        request.package_dir.mkdir(parents=True, exist_ok=True)
    gpu_id, note = choose_device(request.gpu, probe_gpu, "training")
    plan = TrainPlan(
        mode="config",
        notes=[note],
        device=device_name(gpu_id),
        gpu_id=gpu_id,
        config=str(config),
        train=str(train),
        dev=str(dev),
        overrides=[[key, value] for key, value in overrides],
        output=str(request.training_dir),
        # Relative paths in a config (vectors, code) are read from where spaCy runs.
        cwd=str(folder or config.parent),
        example_texts=str(root / "texts.txt") if request.example else "",
        data_fingerprint=fingerprint(data_files([train, dev])),
    )
    if request.example:
        steps = parsed.get("training", {}).get("max_steps")
        plan.notes.append(
            f"example: {steps} steps of NER (PERSON, GPE) and text classification "
            "(POSITIVE, NEGATIVE) on 150 generated sentences"
        )
    if request.resume_from is not None:
        plan.config = str(_resume(Path(request.resume_from), request.work_dir))
        plan.resumed_from = request.resume_from
        plan.notes.append(
            "continuing from the weights of the earlier model-last; spaCy cannot keep the "
            "optimizer state, so the optimizer and the step count start again"
        )
    plan.block_torch = not needs_torch(
        Path(plan.config).read_text(encoding="utf-8") + str(overrides)
    )
    plan.wandb_logger = wandb_logger(parsed.get("training", {}).get("logger"), request.wandb)
    if plan.wandb_logger and (why := rejected_key()) is not None:
        plan.wandb_offline = True
        plan.notes.append(offline_note(why))
    return plan


def wandb_logger(configured: Any, run: Mapping[str, str]) -> dict[str, Any]:
    """The W&B logger for a run: the config's own W&B logger, kept with colabot's run name,
    or spaCy's ``WandbLogger.v5`` for the run's project; empty when the job logs to none."""
    if not run:
        return {}
    if isinstance(configured, Mapping) and str(configured.get("@loggers", "")).startswith(
        "spacy.WandbLogger"
    ):
        kept = {k: v for k, v in configured.items() if v is not None}
        return {**kept, "run_name": run["name"]}
    logger: dict[str, Any] = {
        "@loggers": WANDB_LOGGER,
        "project_name": run["project"],
        "run_name": run["name"],
        "remove_config_values": [],
    }
    if run.get("entity"):
        logger["entity"] = run["entity"]
    return logger


def _step_settings(request: Request) -> list[tuple[str, int]]:
    """The training settings given as parameters of their own, as spaCy keys."""
    given = (("max_steps", request.max_steps), ("eval_frequency", request.eval_frequency))
    return [(key, value) for key, value in given if value is not None]


def _corpus(given: str | None, folder: Path | None, work: Path, what: str) -> Path:
    if given is not None:
        path = materialise(Path(given), work, f"{what}-input").resolve()
    elif folder is not None:
        names, words = (TRAIN_NAMES, TRAIN_WORDS) if what == "train" else (DEV_NAMES, DEV_WORDS)
        path = find_corpus(folder, names, words, what).resolve()
    else:
        raise ToolError(f"no {what} data: give {what}=<.spacy file>")
    check_corpus(path, what)
    return path


def _resume(model: Path, work: Path) -> Path:
    """Copy the saved model out of harm's way and write a config that starts from it."""
    if not (model / "config.cfg").is_file():
        raise ToolError(f"the checkpoint {model.name} has no config.cfg, so it cannot be resumed")
    copy = work / "resume-model"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(model, copy)
    return write_resume_config(copy, work / "resume.cfg")


def prepare_project(request: Request, source: Path, overrides: list[tuple[str, str]]) -> TrainPlan:
    """The plan for running a spaCy project's workflow, in a copy of the project folder."""
    bad = [key for key, _ in overrides if not key.startswith("vars.")]
    if bad:
        raise ToolError(f"{bad[0]}: in a spaCy project only vars.NAME=value settings can be given")
    project_dir = request.work_dir / "project"
    notes = []
    # A copy left by an earlier attempt holds the finished commands' outputs; else the
    # source is checked first, so nothing is copied for a project that cannot run.
    checked = project_dir if project_dir.exists() else source
    if checked == project_dir:
        notes.append("continuing the project: commands that already finished are skipped")
    var_values = dict(overrides)
    gpu_id, device_note = _project_device(request.gpu, checked, var_values)
    project = load_project(checked, {k: parse_override_value(v) for k, v in var_values.items()})
    workflow, commands = choose_workflow(project, request.workflow)
    errors, warnings = asset_problems(list(project.get("assets") or []), checked)
    errors += missing_dependencies(project, commands, checked)
    if errors:
        raise ToolError("; ".join(errors[:3]))
    if checked != project_dir:
        shutil.copytree(source, project_dir, ignore_dangling_symlinks=True)
    chosen = "" if request.workflow else " (the default; choose another with workflow=NAME)"
    notes += [f"running the project's {workflow}{chosen}: {', '.join(commands)}", device_note]
    notes += warnings
    spacy_overrides = [(f"training.{key}", str(value)) for key, value in _step_settings(request)]
    files = data_files(asset_paths(project, checked))
    return TrainPlan(
        mode="project",
        notes=notes,
        device=device_name(gpu_id),
        gpu_id=gpu_id,
        block_torch=False,
        project_dir=str(project_dir),
        workflow=workflow,
        commands=commands,
        project_outputs=declared_outputs(project, commands),
        env={
            "WEASEL_CONFIG_OVERRIDES": override_string(var_values.items()),
            "SPACY_CONFIG_OVERRIDES": override_string(spacy_overrides),
        },
        # A project's data are its assets (the commands make the corpus from them).
        data_fingerprint=fingerprint(files) if files else "",
    )


def asset_paths(project: Mapping[str, Any], root: Path) -> list[Path]:
    """Where a project's assets lie in its folder (those that would lie outside it left out)."""
    paths = []
    for asset in project.get("assets") or []:
        if isinstance(asset, Mapping) and asset.get("dest"):
            try:
                paths.append(join_inside(root, str(asset["dest"])))
            except Refused:
                continue
    return paths


def _project_device(request: str, root: Path, var_values: dict[str, str]) -> tuple[int, str]:
    """The device for a project: set through its ``gpu_id`` variable when it has one
    (``var_values`` gains it), else left to the project."""
    if "vars.gpu_id" in var_values:
        return -1, f"the project runs with vars.gpu_id={var_values['vars.gpu_id']}"
    if "gpu_id" not in (read_project_yml(root).get("vars") or {}):
        return -1, "the project picks its device itself (its project.yml has no gpu_id var)"
    gpu_id, note = choose_device(request, probe_gpu, "the project runs")
    var_values["vars.gpu_id"] = str(gpu_id)
    return gpu_id, f"{note} (vars.gpu_id={gpu_id})"
