"""The inputs and parameters of SLEAP jobs, and the checks of their values that need no
framework: file types, override keys, frames, run names.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from workers.errors import SpecError
from workers.inputs.sources import local_file_name
from workers.jobs import Action, JobSpec
from workers.kinds.base import WANDB_PARAM, InputSlot, Param, validate_common, validate_with_example

CONFIG_SECTIONS = ("data_config", "model_config", "trainer_config")

# Settings colabot decides itself (where things are written, which labels are read), with the
# reason a person gets when trying to override them.
RESERVED_KEYS: dict[str, str] = {
    "data_config.train_labels_path": "the labels come from the job's input",
    "data_config.val_labels_path": "paths cannot be given as overrides",
    "data_config.test_file_path": "paths cannot be given as overrides",
    "data_config.cache_img_path": "paths cannot be given as overrides",
    "trainer_config.ckpt_dir": "checkpoints are always saved in the job's folder",
    "trainer_config.run_name": "use the run_name= parameter",
    "trainer_config.save_ckpt": "checkpoints are always saved",
    "trainer_config.resume_ckpt_path": "use /resume <job id> to continue a training",
    "trainer_config.model_ckpt.save_last": "last.ckpt is always saved (needed by /resume)",
    "model_config.pretrained_backbone_weights": "paths cannot be given as overrides",
    "model_config.pretrained_head_weights": "paths cannot be given as overrides",
    "trainer_config.zmq": "colabot reports progress itself",
}

_OVERRIDE_KEY = re.compile(r"^\+{0,2}([A-Za-z_]\w*)((?:\.\w+)+)$")
_FRAMES_RANGE = re.compile(r"^\d+-\d+$")
_FRAMES_LIST = re.compile(r"^\d+(,\d+)*$")
_RUN_NAME = re.compile(r"^[\w][\w.=+-]{0,99}$")


def looks_like_override(name: str) -> bool:
    """Whether a parameter name is meant as a dotted config override (``a.b=c``)."""
    return "." in name


def override_key(name: str) -> str:
    """``++trainer_config.max_epochs`` -> ``trainer_config.max_epochs``."""
    return name.lstrip("+")


def check_override_key(name: str) -> str | None:
    """Why a dotted override key cannot be used, or None when its form is fine.

    Only the form is checked here; whether the key exists is checked against the real
    configuration before training starts.
    """
    match = _OVERRIDE_KEY.match(name)
    if match is None:
        return "is not a dotted config key like trainer_config.optimizer.lr"
    if match.group(1) not in CONFIG_SECTIONS:
        return f"starts with {match.group(1)!r}; config keys start with " + ", ".join(
            CONFIG_SECTIONS
        )
    key = override_key(name)
    for reserved, reason in RESERVED_KEYS.items():
        if key == reserved or key.startswith(reserved + "."):
            return f"cannot be changed: {reason}"
    return None


def check_frames(text: str) -> str | None:
    """Why a ``frames=`` value is unusable (``2-5`` or ``1,3,8``, not mixed), or None."""
    value = text.replace(" ", "")
    if _FRAMES_RANGE.match(value):
        start, end = (int(v) for v in value.split("-"))
        return None if start <= end else "a range must go from low to high, like 0-99"
    if _FRAMES_LIST.match(value):
        return None
    return "must be a range like 0-99 or a list like 1,5,9 (not both)"


def check_run_name(text: str) -> str | None:
    """Why a run name cannot be a folder name, or None."""
    if _RUN_NAME.match(text) and ".." not in text:
        return None
    return "may use letters, digits and . _ - = + only (up to 100 characters)"


def file_suffix(name: str) -> str:
    """``proj.pkg.slp`` -> ``.slp``; ``data`` -> ``''`` (lower case)."""
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


TRAIN_SUFFIXES = (".slp", ".zip")
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
PRESET_CHOICES = (
    "auto",
    "single_instance",
    "centroid",
    "topdown",
    "bottomup",
    "multi_class_bottomup",
    "multi_class_topdown",
)
TRAIN_INPUTS = (
    InputSlot("input", "SLEAP labels (.slp or .pkg.slp), a training package (.zip), or example"),
    InputSlot("config", "a training config (.yaml, or a SLEAP 1.4 .json)", required=False),
)
INFER_INPUTS = (
    InputSlot("model", "a SLEAP training job's id (12, or 12,13 for top-down) or model folder"),
    InputSlot("input", "a video, or a .slp labels file, to find the animals in"),
)
DEVICE = Param(
    str, "auto", "auto, cpu or gpu (gpu refuses to run without one)", ("auto", "cpu", "gpu")
)

# What an inference on a video shows besides its files: a clip of the predictions drawn on
# the frames, and the frames where the model is least sure, to label next.
PREVIEW_SECONDS = 10
"""Seconds of the predicted range the clip shows by default."""
MAX_PREVIEW_SECONDS = 60
SUGGEST = 10
"""Frames to label next, by default."""
MAX_SUGGEST = 50
VIEW_PARAMS: dict[str, Param] = {
    "preview": Param(bool, None, "send a clip of the predictions on the video (default yes)"),
    "preview_seconds": Param(
        int,
        None,
        f"seconds of video the clip shows (default {PREVIEW_SECONDS})",
        minimum=1,
        maximum=MAX_PREVIEW_SECONDS,
    ),
    "suggest": Param(
        int,
        None,
        f"frames to label next, where the model is least sure (default {SUGGEST}, 0: none)",
        minimum=0,
        maximum=MAX_SUGGEST,
    ),
}
VIEW_PARAM_NAMES = tuple(VIEW_PARAMS)


def views_asked(params: Mapping[str, object]) -> tuple[int, int]:
    """(seconds of clip, frames to suggest) a job asks for; 0 means none."""
    seconds = params.get("preview_seconds")
    suggest = params.get("suggest")
    clip = 0 if params.get("preview") is False else PREVIEW_SECONDS
    if clip and isinstance(seconds, int) and not isinstance(seconds, bool):
        clip = seconds
    frames = suggest if isinstance(suggest, int) and not isinstance(suggest, bool) else SUGGEST
    return clip, frames


CLIP_BUDGET_S = 60.0
"""The longest the clip may take to render; a longer clip is cut where the time ran out."""
VIEWS_LIMIT_S = 180.0
"""The longest the whole preview step may take (its drawing is stopped after that)."""


def view_times(timeout_minutes: object) -> tuple[float, float]:
    """(seconds to render the clip, seconds for the whole preview step). A job's timeout
    applies to each step, so the step keeps to half of it, and the clip to half of that."""
    limit = VIEWS_LIMIT_S
    if isinstance(timeout_minutes, int | float) and timeout_minutes > 0:
        limit = min(limit, float(timeout_minutes) * 60 / 2)
    return min(CLIP_BUDGET_S, limit / 2), limit


TRAIN_PARAMS: dict[str, Param] = {
    "wandb": WANDB_PARAM,
    "preset": Param(
        str,
        None,
        "model type when no config is given: "
        + ", ".join(PRESET_CHOICES)
        + " (auto: from the labels)",
        PRESET_CHOICES,
    ),
    "epochs": Param(
        int, None, "training epochs (default: the config's)", minimum=1, maximum=100_000
    ),
    "batch": Param(int, None, "batch size (default: the config's)", minimum=1, maximum=100_000),
    "steps_per_epoch": Param(int, None, "training steps per epoch", minimum=1, maximum=10_000_000),
    "run_name": Param(str, None, "the model folder's name"),
    "device": DEVICE,
    "seed": Param(
        int,
        None,
        "random seed, which fixes the train/validation split",
        minimum=0,
        maximum=2**32 - 1,
    ),
    "anchor": Param(str, None, "body part that centres top-down models"),
    "infer": Param(bool, False, "after training a package, run its inference jobs"),
    "example": Param(bool, False, "train on built-in synthetic data (/train sleap example)"),
    **{
        name: dataclasses.replace(param, help=param.help + "; with infer=yes or example")
        for name, param in VIEW_PARAMS.items()
    },
}
INFER_PARAMS: dict[str, Param] = {
    "frames": Param(str, None, "frames to use: 0-99 or 1,5,9 (default: all)"),
    "tracking": Param(bool, False, "link the animals across frames into tracks"),
    "batch": Param(int, None, "frames per batch (default 4)", minimum=1, maximum=100_000),
    "peak_threshold": Param(
        float, None, "lowest body-part confidence kept (default 0.2)", minimum=0.0, maximum=1.0
    ),
    "max_instances": Param(
        int, None, "at most this many animals per frame", minimum=1, maximum=10_000
    ),
    "device": DEVICE,
    **VIEW_PARAMS,
}


def _check_suffix(slot: str, text: str, allowed: tuple[str, ...], what: str) -> None:
    name = local_file_name(text)
    if name is None:
        return
    suffix = file_suffix(name)
    if suffix and suffix not in allowed:
        raise SpecError(f"inputs.{slot}", f"{name} is not {what}")


def validate(spec: JobSpec) -> JobSpec:
    """Check a SLEAP request with no framework: file types, value forms, override keys."""
    if spec.action is Action.INFER:
        clean = validate_common(spec, INFER_INPUTS, INFER_PARAMS)
        frames = clean.params.get("frames")
        if frames is not None and (problem := check_frames(str(frames))):
            raise SpecError("params.frames", problem)
        return clean
    clean, example = validate_with_example(
        spec, TRAIN_INPUTS, TRAIN_PARAMS, extra_param=looks_like_override
    )
    _check_training(clean, example)
    return clean


def _check_training(spec: JobSpec, example: bool) -> None:
    for name in spec.params:
        if looks_like_override(name) and (problem := check_override_key(name)):
            raise SpecError(f"params.{name}", problem)
    run_name = spec.params.get("run_name")
    if run_name is not None and (problem := check_run_name(str(run_name))):
        raise SpecError("params.run_name", problem)
    views = [name for name in VIEW_PARAM_NAMES if name in spec.params]
    if views and not example and not spec.params.get("infer"):
        raise SpecError(
            f"params.{views[0]}",
            "applies to predictions on a video, and this training predicts nothing: add "
            "infer=yes (a training package's inference jobs), or give it to "
            "/infer sleap <job id> <video>",
        )
    if example:
        if spec.inputs:
            raise SpecError("inputs.input", "the example brings its own data; give no input")
        return
    _check_suffix(
        "input", spec.inputs["input"], TRAIN_SUFFIXES, "SLEAP labels (.slp) or a package (.zip)"
    )
    if "config" in spec.inputs:
        _check_suffix("config", spec.inputs["config"], CONFIG_SUFFIXES, "a .yaml or .json config")
    name = local_file_name(spec.inputs["input"]) or ""
    if spec.params.get("infer") and file_suffix(name) == ".slp":
        raise SpecError(
            "params.infer",
            "infer=yes runs a training package's inference jobs; for labels, train first "
            "and then use /infer sleap <job id> <video>",
        )
