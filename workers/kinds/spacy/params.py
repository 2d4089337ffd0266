"""The inputs and parameters of spaCy jobs, and the checks of their values that need no
framework: override keys, devices, file types.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from workers.errors import SpecError
from workers.inputs.sources import local_file_name
from workers.jobs import JobSpec, ParamValue
from workers.kinds.base import WANDB_PARAM, InputSlot, Param, validate_common, validate_with_example
from workers.kinds.spacy.plan import TEXT_SUFFIXES

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
    "wandb": WANDB_PARAM,
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
    "suggest": Param(
        int,
        10,
        "list the N texts the model is least sure of, to review (0: none)",
        minimum=0,
        maximum=100,
    ),
}


def is_override_key(name: str) -> bool:
    """Whether a parameter name is a dotted config (or project variable) override."""
    return OVERRIDE_KEY.fullmatch(name) is not None


def check_gpu_value(value: ParamValue | None) -> None:
    """Refuse a gpu= value that is not auto, cpu or a GPU number."""
    text = str(value).strip().lower()
    if text not in ("auto", "cpu") and not text.isdigit():
        raise SpecError("params.gpu", f"must be auto, cpu or a GPU number, got {value!r}")


def validate_train(spec: JobSpec) -> JobSpec:
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


def validate_infer(spec: JobSpec) -> JobSpec:
    clean = validate_common(spec, INFER_INPUTS, INFER_PARAMS)
    check_gpu_value(clean.params.get("gpu"))
    name = local_file_name(clean.inputs.get("texts", ""))
    suffix = PurePosixPath(name).suffix.lower() if name else ""
    if suffix and suffix not in TEXT_SUFFIXES and suffix != ".zip":
        raise SpecError("inputs.texts", f"must be a .txt, .jsonl or .spacy file, got {name}")
    return clean
