"""The prepare step of a SLEAP training job: check its inputs, then plan the models (and the
predictions after them) and write their configs.

Everything that can be refused is refused here, before any training starts: unreadable or
empty labels, missing videos, unknown config keys, a GPU asked for but absent. The configs
take the person's params and overrides, then the settings colabot decides (where checkpoints
go, the device, the W&B run); a resumed job continues each model from its checkpoint. Runs in
a job subprocess (imports sleap-io, and sleap-nn's config code without torch; torch only to
look at a GPU, or to make a config from labels not seen before: see
:mod:`workers.kinds.sleap.tools.cache`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from workers.kinds.sleap.tools.device import choose_device
from workers.kinds.sleap.tools.errors import ToolError
from workers.kinds.sleap.tools.infer_plan import predictions_name
from workers.kinds.sleap.tools.labels import LabelsReport, check_labels
from workers.kinds.sleap.tools.train_inputs import (
    TrainingSource,
    data_fingerprint,
    example_source,
    open_training_input,
    package_file,
)
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


def prepare_training(request: Request) -> Plan:
    """Check a training job's inputs and write its configs; return the plan."""
    work, outputs = request.work, request.outputs
    params = request.params
    accelerator, where = choose_device(str(params.get("device") or "auto"), training=True)
    if params.get("example"):
        source = example_source(work)
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
    plan.data = data_fingerprint(source, labels)
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
                output=str(outputs / predictions_name(source.new_video)),
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
