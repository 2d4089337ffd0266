"""The prepare step: turn a training request into a plan. It unpacks zips, finds the config
and the data, checks them (the config parses, overrides name real settings, .spacy files are
DocBins, a project's assets are in place), picks the device and, on /resume, writes a config
that starts from the saved weights.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from workers.kinds.spacy_config import check_config, parse_override_value, write_resume_config
from workers.kinds.spacy_device import (
    block_torch,
    choose_device,
    device_name,
    needs_torch,
    probe_gpu,
)
from workers.kinds.spacy_example import make_example
from workers.kinds.spacy_files import (
    DEV_NAMES,
    DEV_WORDS,
    TRAIN_NAMES,
    TRAIN_WORDS,
    check_corpus,
    find_config,
    find_corpus,
    materialise,
)
from workers.kinds.spacy_project import (
    asset_problems,
    choose_workflow,
    declared_outputs,
    load_project,
    missing_dependencies,
    override_string,
    read_project_yml,
)
from workers.kinds.spacy_protocol import ToolError, TrainPlan, emit


def prepare(args: argparse.Namespace) -> TrainPlan:
    """Check a training request and decide how to run it."""
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    overrides = [_split_override(text) for text in args.override]
    if args.example:
        emit("stage", text="generating the example data and config")
        block_torch()
        root = make_example(work / "example")
    else:
        emit("stage", text="checking the config and data")
        root = materialise(args.config, work, "config-input")
    if root.is_file() and root.name == "project.yml":
        root = root.parent
    if root.is_dir() and (root / "project.yml").is_file():
        return prepare_project(args, root, overrides)
    if args.workflow:
        raise ToolError("workflow= is for spaCy projects, and this input has no project.yml")
    return prepare_config(args, root, overrides)


def prepare_config(
    args: argparse.Namespace, root: Path, overrides: list[tuple[str, str]]
) -> TrainPlan:
    """The plan for training from a config (a file, or a folder with config and data)."""
    folder = root if root.is_dir() else None
    config = find_config(root) if folder else root
    if config.suffix.lower() != ".cfg":
        raise ToolError(f"{config.name} is not a spaCy config (.cfg), folder or zip")
    train = _corpus(args.train, folder, args.work, "train")
    dev = _corpus(args.dev, folder, args.work, "dev")
    for key, value in (("max_steps", args.max_steps), ("eval_frequency", args.eval_frequency)):
        if value is not None:
            overrides.append((f"training.{key}", str(value)))
    parsed = check_config(config, overrides, train, dev)
    if args.package_dir is not None:
        args.package_dir.mkdir(parents=True, exist_ok=True)
    gpu_id, note = choose_device(args.gpu, probe_gpu, "training")
    plan = TrainPlan(
        mode="config",
        notes=[note],
        device=device_name(gpu_id),
        gpu_id=gpu_id,
        config=str(config),
        train=str(train),
        dev=str(dev),
        overrides=[[key, value] for key, value in overrides],
        output=str(args.output),
        # Relative paths in a config (vectors, code) are read from where spaCy runs.
        cwd=str(folder or config.parent),
        example_texts=str(root / "texts.txt") if args.example else "",
    )
    if args.example:
        steps = parsed.get("training", {}).get("max_steps")
        plan.notes.append(
            f"example: {steps} steps of NER (PERSON, GPE) and text classification "
            "(POSITIVE, NEGATIVE) on 150 generated sentences"
        )
    if args.resume_from is not None:
        plan.config = str(_resume(args.resume_from, args.work))
        plan.resumed_from = str(args.resume_from)
        plan.notes.append(
            "continuing from the weights of the earlier model-last; spaCy cannot keep the "
            "optimizer state, so the optimizer and the step count start again"
        )
    plan.block_torch = not needs_torch(
        Path(plan.config).read_text(encoding="utf-8") + str(overrides)
    )
    return plan


def _corpus(given: Path | None, folder: Path | None, work: Path, what: str) -> Path:
    if given is not None:
        path = materialise(given, work, f"{what}-input").resolve()
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


def prepare_project(
    args: argparse.Namespace, source: Path, overrides: list[tuple[str, str]]
) -> TrainPlan:
    """The plan for running a spaCy project's workflow, in a copy of the project folder."""
    bad = [key for key, _ in overrides if not key.startswith("vars.")]
    if bad:
        raise ToolError(f"{bad[0]}: in a spaCy project only vars.NAME=value settings can be given")
    project_dir = args.work / "project"
    notes = []
    # A copy left by an earlier attempt holds the finished commands' outputs; else the
    # source is checked first, so nothing is copied for a project that cannot run.
    checked = project_dir if project_dir.exists() else source
    if checked == project_dir:
        notes.append("continuing the project: commands that already finished are skipped")
    var_values = dict(overrides)
    gpu_id, device_note = _project_device(args.gpu, checked, var_values)
    project = load_project(checked, {k: parse_override_value(v) for k, v in var_values.items()})
    workflow, commands = choose_workflow(project, args.workflow)
    errors, warnings = asset_problems(list(project.get("assets") or []), checked)
    errors += missing_dependencies(project, commands, checked)
    if errors:
        raise ToolError("; ".join(errors[:3]))
    if checked != project_dir:
        shutil.copytree(source, project_dir, ignore_dangling_symlinks=True)
    chosen = "" if args.workflow else " (the default; choose another with workflow=NAME)"
    notes += [f"running the project's {workflow}{chosen}: {', '.join(commands)}", device_note]
    notes += warnings
    spacy_overrides = [
        (f"training.{key}", str(value))
        for key, value in (("max_steps", args.max_steps), ("eval_frequency", args.eval_frequency))
        if value is not None
    ]
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
    )


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


def _split_override(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    return key, value
