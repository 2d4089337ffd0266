"""The prepare step of SLEAP jobs: check every input, then plan the models and predictions.

Everything that can be refused is refused here, before any training starts: unreadable or
empty labels, missing videos, packages without jobs.yaml or labels, unknown config keys, a
GPU asked for but absent. Runs in a job subprocess (imports sleap-io, and sleap-nn's config
code without torch; torch only to look at a GPU, or to make a config from labels not seen
before: see :mod:`workers.kinds.sleap.tools.cache`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workers.inputs.archives import safe_extract, single_root
from workers.kinds.sleap.plan import (
    FINISHED_MARK,
    HISTORY,
    ModelPlan,
    Plan,
    PredictPlan,
    Request,
    set_aside,
)
from workers.kinds.sleap.progress import merge_log_text, parse_log
from workers.kinds.sleap.tools import config as configs
from workers.kinds.sleap.tools.errors import ToolError
from workers.kinds.sleap.tools.labels import LabelsReport, inspect_labels, save_remapped
from workers.kinds.sleap.tools.package import PackageError, PackageJobs, parse_jobs
from workers.safety.names import shown
from workers.safety.paths import Refused, join_inside
from workers.wandb.login import offline_note, rejected_key

if TYPE_CHECKING:
    from omegaconf import DictConfig

# The built-in example: small enough for a CPU in about a minute, long enough (600 steps at
# half resolution) for the model to find all three body parts.
EXAMPLE_SETTINGS: dict[str, Any] = {
    "data_config.preprocessing.scale": 0.5,
    "model_config.backbone_config.unet.filters": 8,
    "model_config.backbone_config.unet.output_stride": 1,
    "model_config.head_configs.single_instance.confmaps.output_stride": 1,
    "model_config.head_configs.single_instance.confmaps.sigma": 2.5,
    "trainer_config.max_epochs": 10,
    "trainer_config.train_steps_per_epoch": 60,
    "trainer_config.min_train_steps_per_epoch": 60,
    "trainer_config.train_data_loader.batch_size": 4,
    "trainer_config.val_data_loader.batch_size": 4,
    "trainer_config.early_stopping.stop_training_on_plateau": False,
    "trainer_config.optimizer.lr": 0.003,
}
MODEL_FILES = ("training_config.yaml", "training_config.json")


# ------------------------------------------------------------------------------------ devices


def gpu_driver_present() -> bool:
    """Whether a GPU driver is loaded at all (without it PyTorch cannot see a GPU)."""
    return any(
        Path(p).exists() for p in ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd")
    )


def choose_device(device: str, *, training: bool) -> tuple[str, str]:
    """(value for sleap-nn, a note for the person). Refuses a GPU that is not there."""
    if device == "cpu":
        return "cpu", "on the CPU, as asked"
    name = None
    if gpu_driver_present():
        import torch

        if torch.cuda.is_available():
            name = torch.cuda.get_device_name(0)
    if name is not None:
        chosen = ("gpu" if training else "cuda") if device == "gpu" else "auto"
        return chosen, f"on the GPU ({name})"
    if device == "gpu":
        raise ToolError(
            "device=gpu was asked for, but this machine has no usable CUDA GPU (PyTorch sees "
            "none); use device=auto or device=cpu"
        )
    return "auto", "on the CPU: no GPU found, so it will be slow"


# ---------------------------------------------------------------------------- training inputs


@dataclass
class TrainingSource:
    """What a training input turned out to be."""

    labels: list[Path]
    package_dir: Path | None = None
    jobs: PackageJobs | None = None
    new_video: Path | None = None


def _find_jobs_yaml(folder: Path) -> Path | None:
    root = single_root(folder)
    for candidate in (root / "jobs.yaml", root / "jobs.yml"):
        if candidate.is_file():
            return candidate
    return None


def package_file(root: Path, relative: str, name: str) -> Path:
    """A file jobs.yaml names, which must lie inside the package even after symlinks."""
    try:
        return join_inside(root, relative)
    except Refused as exc:
        raise ToolError(
            f"{name}: jobs.yaml names {shown(relative)}, which lies outside the package "
            f"({exc.reason})"
        ) from None


def open_package(folder: Path, name: str) -> TrainingSource:
    """An unpacked training package: read jobs.yaml and check every file it names."""
    import yaml

    jobs_file = _find_jobs_yaml(folder)
    if jobs_file is None:
        slps = sorted(
            p.name
            for p in folder.rglob("*.slp")
            if not p.name.startswith(("labels_gt.", "labels_pr."))
        )
        hint = f" (it holds {', '.join(slps[:3])}: send that file instead)" if slps else ""
        raise ToolError(
            f"{name} is not a SLEAP training package: it has no jobs.yaml{hint}. Export one "
            "from SLEAP with Predict > Run Training > Export Training Job Package"
        )
    try:
        jobs = parse_jobs(yaml.safe_load(jobs_file.read_text()))
    except yaml.YAMLError as exc:
        raise ToolError(f"{name}: jobs.yaml is not valid YAML ({exc})") from None
    except PackageError as exc:
        raise ToolError(f"{name}: {exc}") from None
    root = jobs_file.parent
    labels: list[Path] = []
    for entry in jobs.training:
        for wanted, what in ((entry.cfg, "config"), (entry.train_labels, "labels file")):
            package_file(root, wanted, name)
            if not (root / wanted).is_file():
                raise ToolError(
                    f"{name} is missing a file: jobs.yaml names the {what} {wanted}, "
                    "which is not in the package"
                )
        if root / entry.train_labels not in labels:
            labels.append(root / entry.train_labels)
    return TrainingSource(labels=labels, package_dir=root, jobs=jobs)


def open_training_input(path: Path, work: Path) -> TrainingSource:
    """A labels file, a package zip, or a folder holding one of them."""
    if path.is_dir():
        if _find_jobs_yaml(path) is not None:
            return open_package(path, path.name)
        slps = sorted(path.glob("*.slp"))
        if len(slps) != 1:
            found = ", ".join(p.name for p in slps) or "none"
            raise ToolError(
                f"the folder {path.name} should hold one .slp labels file or a jobs.yaml "
                f"(found: {found})"
            )
        return TrainingSource(labels=slps)
    if path.suffix.lower() == ".zip":
        folder = work / "package"
        if folder.exists():
            shutil.rmtree(folder)
        safe_extract(path, folder)
        return open_package(folder, path.name)
    if path.suffix.lower() == ".slp":
        return TrainingSource(labels=[path])
    raise ToolError(
        f"{path.name} is neither SLEAP labels (.slp, .pkg.slp) nor a training package (.zip)"
    )


def check_labels(
    paths: list[Path], work: Path, *, for_training: bool
) -> tuple[list[Path], list[LabelsReport]]:
    """Check each labels file; save a copy where video paths had to be fixed."""
    usable: list[Path] = []
    reports: list[LabelsReport] = []
    for i, path in enumerate(paths):
        labels, report, changed = inspect_labels(path, for_training=for_training)
        reports.append(report)
        if changed:
            usable.append(save_remapped(labels, work / "labels" / str(i) / path.name))
        else:
            usable.append(path)
    return usable, reports


# ------------------------------------------------------------------------------------ configs


@dataclass
class ModelDraft:
    """A config on its way to being planned."""

    cfg: DictConfig
    run_name: str
    labels: Path
    extra: dict[str, Any] = field(default_factory=dict)


def _run_names(heads: list[str], wanted: str | None) -> list[str]:
    if wanted:
        names = [wanted] if len(heads) == 1 else [f"{wanted}.{h}" for h in heads]
    else:
        names = list(heads)
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}.{seen[name]}")
    return unique


def draft_models(
    request: Request, source: TrainingSource, labels: list[Path], fingerprint: str = ""
) -> list[ModelDraft]:
    """The configs to train, in order, with their run names and labels.

    ``fingerprint`` is that of the first labels (what a config made from them is cached by).
    """
    params = request.params
    config_inputs = request.inputs.get("config") or []
    if source.jobs is not None and source.package_dir is not None:
        if config_inputs or params.get("preset"):
            raise ToolError(
                "a training package brings its own configs; leave config= and preset= out"
            )
        originals = {p: fixed for p, fixed in zip(source.labels, labels, strict=True)}
        drafts = []
        for entry in source.jobs.training:
            cfg = configs.load_config(source.package_dir / entry.cfg)
            run_name = entry.run_name
            drafts.append(
                ModelDraft(cfg, run_name, originals[source.package_dir / entry.train_labels])
            )
        if params.get("run_name"):
            for draft in drafts:
                draft.run_name = f"{params['run_name']}.{configs.head_of(draft.cfg)}"
        return drafts
    if config_inputs:
        cfg = configs.load_config(Path(config_inputs[0]))
        wanted = params.get("run_name") or cfg.trainer_config.get("run_name") or None
        name = _run_names([configs.head_of(cfg)], wanted)[0]
        return [ModelDraft(cfg, name, labels[0])]
    preset = params.get("preset") or None
    if params.get("example"):
        preset = preset or "single_instance"
    made = configs.generate_configs(
        labels[0],
        None if preset == "auto" else preset,
        fingerprint,
        cache_root=Path(request.cache) if request.cache else None,
    )
    names = _run_names([configs.head_of(c) for c in made], params.get("run_name"))
    return [ModelDraft(cfg, name, labels[0]) for cfg, name in zip(made, names, strict=True)]


def apply_params(drafts: list[ModelDraft], request: Request, nodes: list[str]) -> None:
    """Params, the quiet defaults and the person's overrides, in that order."""
    params = request.params
    overrides = request.overrides
    settings: dict[str, Any] = {
        k: v for k, v in configs.QUIET_DEFAULTS.items() if k not in overrides
    }
    if params.get("example"):
        settings.update(EXAMPLE_SETTINGS)
    if params.get("epochs"):
        settings["trainer_config.max_epochs"] = int(params["epochs"])
    if params.get("batch"):
        settings["trainer_config.train_data_loader.batch_size"] = int(params["batch"])
        settings["trainer_config.val_data_loader.batch_size"] = int(params["batch"])
    if params.get("steps_per_epoch"):
        settings["trainer_config.train_steps_per_epoch"] = int(params["steps_per_epoch"])
        settings["trainer_config.min_train_steps_per_epoch"] = int(params["steps_per_epoch"])
    for draft in drafts:
        for key, value in settings.items():
            configs.set_key(draft.cfg, key, value)
        if params.get("seed") is not None:
            configs.set_key(draft.cfg, "trainer_config.seed", int(params["seed"]))
        elif draft.cfg.trainer_config.seed is None:
            configs.set_key(draft.cfg, "trainer_config.seed", 42)
    if params.get("anchor"):
        configs.set_anchor([d.cfg for d in drafts], str(params["anchor"]), nodes)
    configs.apply_overrides([d.cfg for d in drafts], overrides)
    for draft in drafts:
        configs.check_anchors(draft.cfg, nodes)


def _absolute_val_labels(cfg: DictConfig, package_dir: Path | None) -> None:
    val = cfg.data_config.get("val_labels_path")
    if not val:
        return
    fixed = []
    for item in val:
        path = Path(str(item))
        if not path.is_absolute() and package_dir is not None:
            path = package_dir / path
        if not path.is_file():
            raise ToolError(f"the config names validation labels {item}, which are not there")
        fixed.append(str(path))
    configs.set_key(cfg, "data_config.val_labels_path", fixed)


# ------------------------------------------------------------------------------------- resume


def link_or_copy(source: Path, dest: Path) -> Path:
    """Hard-link ``source`` to ``dest`` (same disk), or copy it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        dest.unlink()
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)
    return dest


def _move_aside(folder: Path, work: Path, attempt: int) -> None:
    """Move an old run folder out of the way (sleap-nn would otherwise pick a new name)."""
    if folder.exists():
        set_aside(folder, work, f"attempt-{attempt}")


def _history_text(saved: Path) -> str:
    earlier = (saved / HISTORY).read_text() if (saved / HISTORY).is_file() else ""
    latest = (
        (saved / "training_log.csv").read_text() if (saved / "training_log.csv").is_file() else ""
    )
    return merge_log_text(earlier, latest)


def plan_resume(model: ModelPlan, saved: Path, request: Request, cfg: DictConfig) -> None:
    """Continue ``model`` from what a checkpoint holds for it (in ``saved``), if anything.

    A finished model is restored as it is; an unfinished one continues from ``last.ckpt``
    in a fresh folder (``work/attempt-N``), with the seed it started with.
    """
    final = Path(model.final_dir)
    history = _history_text(saved)
    done = [row.epoch for row in parse_log(history)]
    start = max(done) + 1 if done else 0
    finished = (saved / FINISHED_MARK).is_file() or (
        start >= model.max_epochs and (saved / "best.ckpt").is_file()
    )
    if finished and (saved / "best.ckpt").is_file():
        if final.resolve() != saved.resolve():
            for item in saved.iterdir():
                if item.is_file() and item.name not in (FINISHED_MARK, HISTORY, "last.ckpt"):
                    link_or_copy(item, final / item.name)
            (final / "training_log.csv").write_text(history)
        model.skip = True
        model.start_epoch = start
        return
    if not (saved / "last.ckpt").is_file():
        return
    stage = request.work / "resume-in" / model.run_name
    if stage.exists():
        shutil.rmtree(stage)
    link_or_copy(saved / "last.ckpt", stage / "last.ckpt")
    if (saved / "best.ckpt").is_file():
        model.earlier_best = str(link_or_copy(saved / "best.ckpt", stage / "best.ckpt"))
    (stage / HISTORY).write_text(history)
    model.history = str(stage / HISTORY)
    model.start_epoch = start
    seed = configs.read_seed(saved / "training_config.yaml")
    if seed is not None:
        configs.set_key(cfg, "trainer_config.seed", seed)
    configs.set_key(cfg, "trainer_config.resume_ckpt_path", str(stage / "last.ckpt"))
    run_root = request.work / f"attempt-{request.attempt}"
    model.run_dir = str(run_root / model.run_name)
    configs.set_key(cfg, "trainer_config.ckpt_dir", str(run_root))


# ------------------------------------------------------------------------------ training plan


def _example_source(work: Path) -> TrainingSource:
    from workers.kinds.sleap.tools.example import make_example

    data = make_example(work / "example")
    return TrainingSource(labels=[data.labels], new_video=data.new_video)


def prepare_training(request: Request) -> Plan:
    """Check a training job's inputs and write its configs; return the plan."""
    work, outputs = request.work, request.outputs
    params = request.params
    accelerator, where = choose_device(str(params.get("device") or "auto"), training=True)
    if params.get("example"):
        source = _example_source(work)
    else:
        source = open_training_input(Path(request.inputs["input"][0]), work)
    if params.get("infer") and source.jobs is None and not params.get("example"):
        raise ToolError(
            "infer=yes runs a training package's inference jobs, and this input is not a "
            "package; use /infer sleap <this job's id> <video> after training"
        )
    labels, reports = check_labels(source.labels, work, for_training=True)
    nodes = reports[0].nodes if reports else []
    drafts = draft_models(request, source, labels, reports[0].fingerprint if reports else "")
    apply_params(drafts, request, nodes)
    plan = Plan(action="train", accelerator=accelerator, cwd=str(source.package_dir or work))
    wandb = dict(request.wandb)
    offline = wandb_rejected(wandb)
    for index, draft in enumerate(drafts, 1):
        _settle_config(draft, source, outputs / "models", accelerator, wandb)
        plan.models.append(_plan_model(index, draft, request))
    plan.predictions = _planned_predictions(request, source, plan.models)
    plan.summary = _training_summary(source, reports, plan, where, request)
    if offline:
        plan.summary += "\n" + offline
    return plan


def wandb_rejected(wandb: dict[str, str]) -> str:
    """For an online run W&B refuses (key, reachability): switch ``wandb`` to offline and
    return the note for the chat; '' otherwise."""
    if wandb.get("mode") != "online":
        return ""
    why = rejected_key()
    if why is None:
        return ""
    wandb["mode"] = "offline"
    return offline_note(why)


def _settle_config(
    draft: ModelDraft,
    source: TrainingSource,
    models_dir: Path,
    accelerator: str,
    wandb: dict[str, str],
) -> None:
    """The settings colabot decides: labels, where checkpoints go, device, no zmq ports of
    the config's own (colabot gives its own on the command line), and the W&B run."""
    cfg = draft.cfg
    configs.set_key(cfg, "data_config.train_labels_path", [str(draft.labels)])
    _absolute_val_labels(cfg, source.package_dir)
    for key, value in (
        ("trainer_config.save_ckpt", True),
        ("trainer_config.model_ckpt.save_last", True),
        ("trainer_config.ckpt_dir", str(models_dir)),
        ("trainer_config.run_name", draft.run_name),
        ("trainer_config.resume_ckpt_path", None),
        ("trainer_config.trainer_accelerator", accelerator),
        ("trainer_config.zmq.controller_port", None),
        ("trainer_config.zmq.publish_port", None),
    ):
        configs.set_key(cfg, key, value)
    if wandb:
        # The key comes from the step's environment (WANDB_API_KEY), never from the config.
        for key, value in (
            ("trainer_config.use_wandb", True),
            ("trainer_config.wandb.project", wandb["project"]),
            ("trainer_config.wandb.entity", wandb.get("entity") or None),
            ("trainer_config.wandb.name", f"{wandb['name']}-{draft.run_name}"),
            ("trainer_config.wandb.wandb_mode", wandb["mode"]),
            ("trainer_config.wandb.api_key", ""),
            ("trainer_config.wandb.delete_local_logs", wandb["mode"] != "offline"),
        ):
            configs.set_key(cfg, key, value)


def _plan_model(index: int, draft: ModelDraft, request: Request) -> ModelPlan:
    """Plan one model (continuing it from a checkpoint when resuming) and save its config."""
    cfg, work = draft.cfg, request.work
    final = Path(str(cfg.trainer_config.ckpt_dir)) / draft.run_name
    model = ModelPlan(
        index=index,
        head=configs.head_of(cfg),
        run_name=draft.run_name,
        config="",
        run_dir=str(final),
        final_dir=str(final),
        max_epochs=int(cfg.trainer_config.max_epochs),
        steps_per_epoch=int(cfg.trainer_config.get("train_steps_per_epoch") or 0),
    )
    saved = Path(request.resume_from) / draft.run_name if request.resume_from else None
    if saved is not None and saved.is_dir():
        plan_resume(model, saved, request, cfg)
    if not model.skip:
        _move_aside(Path(model.run_dir), work, request.attempt)
        if Path(model.run_dir) != final:
            _move_aside(final, work, request.attempt)
    model.config = str(configs.save_config(cfg, work / "configs" / f"{index}-{model.head}.yaml"))
    return model


def _planned_predictions(
    request: Request, source: TrainingSource, models: list[ModelPlan]
) -> list[PredictPlan]:
    outputs = request.outputs / "predictions"
    if request.params.get("example") and source.new_video is not None:
        return [
            PredictPlan(
                data=str(source.new_video),
                models=[m.final_dir for m in models],
                output=str(outputs / _predictions_name(source.new_video)),
            )
        ]
    if not request.params.get("infer") or source.jobs is None or source.package_dir is None:
        return []
    by_run_path = {
        entry.run_path: model for entry, model in zip(source.jobs.training, models, strict=True)
    }
    planned = []
    for entry in source.jobs.inference:
        data = package_file(source.package_dir, entry.data_path, "the package")
        chosen = [by_run_path.get(m.replace("\\", "/")) for m in entry.models]
        if not data.exists() or any(m is None for m in chosen):
            print(
                f"skipping the inference job on {entry.data_path}: its data or models are "
                "not in the package"
            )
            continue
        planned.append(
            PredictPlan(
                data=str(data),
                models=[m.final_dir for m in chosen if m is not None],
                output=str(outputs / entry.output_path),
                only_suggested_frames=entry.only_suggested_frames,
                tracking=entry.tracking,
            )
        )
    return planned


def _training_summary(
    source: TrainingSource,
    reports: list[LabelsReport],
    plan: Plan,
    where: str,
    request: Request,
) -> str:
    lines = ["Labels checked: " + report.summary() for report in reports]
    if request.params.get("example"):
        lines.insert(0, "Example: a synthetic bug with 3 body parts, 16 labelled frames.")
    if source.jobs is not None:
        lines.append(
            f"Training package: {len(plan.models)} model(s) to train in order "
            f"({', '.join(m.head for m in plan.models)})"
            + (f", then {len(plan.predictions)} inference job(s)" if plan.predictions else "")
        )
    for model in plan.models:
        if model.skip:
            lines.append(f"Model {model.index} ({model.head}) was finished before: kept.")
        elif model.start_epoch:
            lines.append(
                f"Model {model.index} ({model.head}) continues after epoch {model.start_epoch} "
                f"of {model.max_epochs}."
            )
    lines.append(f"Training {where}.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- inference plan


def _is_model_dir(folder: Path) -> bool:
    return folder.is_dir() and any((folder / name).is_file() for name in MODEL_FILES)


def find_models(paths: list[Path], work: Path) -> list[Path]:
    """Model folders from what was given: run folders, folders of them, or zips of them."""
    found: list[Path] = []
    for i, path in enumerate(paths):
        if path.is_file() and path.suffix.lower() == ".zip":
            path = safe_extract(path, work / "models" / f"{i}-{path.stem}")
        elif path.is_file() and path.name in (*MODEL_FILES, "best.ckpt"):
            path = path.parent
        if _is_model_dir(path):
            found.append(path)
            continue
        inner = sorted(p.parent for p in path.rglob("training_config.*") if _is_model_dir(p.parent))
        if not inner:
            raise ToolError(
                f"{path.name} is not a trained SLEAP model: no training_config.yaml in it "
                "(give a finished training job's id, or its model folder)"
            )
        found.extend(dict.fromkeys(inner))
    for folder in found:
        if not any((folder / name).is_file() for name in ("best.ckpt", "best_model.h5")):
            raise ToolError(f"the model {folder.name} has no weights (best.ckpt) yet")
    return found


def model_head(folder: Path) -> str:
    """The model type of a model folder (``legacy`` for SLEAP 1.4 models)."""
    from omegaconf import OmegaConf

    config = folder / "training_config.yaml"
    if not config.is_file():
        return "legacy"
    try:
        heads = OmegaConf.load(config).model_config.head_configs
    except Exception:
        return "unknown"
    return next((str(k) for k, v in heads.items() if v is not None), "unknown")


def check_model_set(heads: list[str]) -> None:
    """Refuse a top-down second stage without its first stage."""
    if "centered_instance" in heads and "centroid" not in heads:
        raise ToolError(
            "a centered_instance model needs its centroid model too: give both, as "
            "<job id> of a top-down training or two ids/folders separated by a comma"
        )


def describe_video(path: Path) -> str:
    """``video.mp4: 400 frames, 1024x1024``; ToolError when it cannot be read."""
    import sleap_io as sio

    try:
        video = sio.load_video(str(path))
        shape = video.shape
        frame = video[0]
    except Exception as exc:
        raise ToolError(f"{path.name} cannot be read as a video ({exc})") from None
    if shape is None or frame is None:
        raise ToolError(f"{path.name} cannot be read as a video")
    return f"{path.name}: {shape[0]} frames, {shape[2]}x{shape[1]}"


def _predictions_name(data: Path) -> str:
    name = data.name
    for suffix in (".pkg.slp", ".slp"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return f"{name}.predictions.slp"


def prepare_inference(request: Request) -> Plan:
    """Check an inference job's models and data; return the plan."""
    params = request.params
    work = request.work
    device, where = choose_device(str(params.get("device") or "auto"), training=False)
    models = find_models([Path(p) for p in request.inputs["model"]], work)
    heads = [model_head(m) for m in models]
    check_model_set(heads)
    order = sorted(range(len(models)), key=lambda i: heads[i] != "centroid")
    models, heads = [models[i] for i in order], [heads[i] for i in order]
    data = Path(request.inputs["input"][0])
    if data.suffix.lower() == ".slp":
        fixed, reports = check_labels([data], work, for_training=False)
        described = "Labels checked: " + reports[0].summary()
        data_path = fixed[0]
    else:
        described = "Video: " + describe_video(data)
        data_path = data
    batch, peak, most = (
        params.get("batch"),
        params.get("peak_threshold"),
        params.get("max_instances"),
    )
    prediction = PredictPlan(
        data=str(data_path),
        models=[str(m) for m in models],
        output=str(request.outputs / _predictions_name(data)),
        tracking=bool(params.get("tracking")),
        frames=str(params.get("frames") or ""),
        batch=int(batch) if batch else None,
        peak_threshold=float(peak) if peak is not None else None,
        max_instances=int(most) if most else None,
    )
    model_text = ", ".join(f"{h} ({m.name})" for h, m in zip(heads, models, strict=True))
    summary = f"{described}\nModels: {model_text}\nPredicting {where}."
    return Plan(
        action="infer",
        summary=summary,
        accelerator=device,
        predictions=[prediction],
        cwd=str(work),
    )
