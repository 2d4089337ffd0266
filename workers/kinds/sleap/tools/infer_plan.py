"""The prepare step of a SLEAP inference job: check the models and the data, then plan the
predictions.

Models are run folders, folders of them, or zips of them, each with its weights; a top-down
second stage needs its first. The data is a video that must read, or labels checked like a
training job's. Runs in a job subprocess (imports sleap-io; torch only to look at a GPU).
"""

from __future__ import annotations

from pathlib import Path

from workers.inputs.archives import safe_extract
from workers.kinds.sleap.plan import Plan, PredictPlan, Request
from workers.kinds.sleap.tools.device import choose_device
from workers.kinds.sleap.tools.errors import ToolError
from workers.kinds.sleap.tools.labels import check_labels

MODEL_FILES = ("training_config.yaml", "training_config.json")


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


def predictions_name(data: Path) -> str:
    """Where the predictions on ``data`` are saved: ``NAME.predictions.slp``."""
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
        output=str(request.outputs / predictions_name(data)),
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
