"""What the spaCy kind and its tools agree on: the request the kind writes, the plan the
prepare step answers with, the lines the tools print, and the files a job leaves.

Both sides import this module: the kind in the bot process, the tools (and the training
logger) in theirs. It imports nothing heavy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers.kinds.plans import load

MACHINE_PREFIX = "COLABOT_SPACY "
"""Lines starting with this carry one JSON event from the job programs to the kind."""
ERROR_PREFIX = "colabot-spacy: error: "
"""Lines starting with this explain why a job program refused to go on."""
LOGGER_NAME = "colabot.spacy_progress.v1"
WANDB_LOGGER = "spacy.WandbLogger.v5"

PLAN_FILE = "spacy-plan.json"
INFERENCE_STATS = "inference.json"
TRAINING_DIR = "training"
TRAINING_LOG = "training-log.jsonl"
PACKAGE_DIR = "package"
PREDICTIONS = "predictions.jsonl"
CARD = "training-card.png"
"""The end-of-training picture: the curves and the held-out scores per component."""
BEST, LAST = "model-best", "model-last"
TEXT_SUFFIXES = (".txt", ".jsonl", ".ndjson", ".spacy")


@dataclass
class Request:
    """What a job asks the tools for (``request.json`` in its work folder)."""

    action: str
    work: str
    outputs: str
    gpu: str = "auto"
    example: bool = False
    config: str | None = None
    train: str | None = None
    dev: str | None = None
    max_steps: int | None = None
    eval_frequency: int | None = None
    workflow: str | None = None
    overrides: list[list[str]] = field(default_factory=list)
    resume_from: str | None = None
    package: bool = False
    model: str | None = None
    texts: str | None = None
    batch_size: int = 64
    text_key: str = "text"
    suggest: int = 0
    """How many of the least confident texts inference lists for review (0: none)."""
    wandb: dict[str, str] = field(default_factory=dict)
    """The job's W&B run (mode, project, entity, name); empty when it logs to none."""

    @property
    def work_dir(self) -> Path:
        """The job's scratch folder."""
        return Path(self.work)

    @property
    def training_dir(self) -> Path:
        """Where spaCy writes model-best and model-last."""
        return Path(self.outputs) / TRAINING_DIR

    @property
    def package_dir(self) -> Path | None:
        """Where ``spacy package`` builds the wheel, when one is asked for."""
        return Path(self.outputs) / PACKAGE_DIR if self.package else None

    @property
    def predictions(self) -> Path:
        """The JSONL file inference writes."""
        return Path(self.outputs) / PREDICTIONS

    @property
    def stats(self) -> Path:
        """The inference counts the kind reads back."""
        return self.work_dir / INFERENCE_STATS


@dataclass
class TrainPlan:
    """What the prepare step decided; the kind's later steps and the collection follow it."""

    mode: str = "config"
    notes: list[str] = field(default_factory=list)
    device: str = "CPU"
    gpu_id: int = -1
    block_torch: bool = True
    config: str = ""
    train: str = ""
    dev: str = ""
    overrides: list[list[str]] = field(default_factory=list)
    output: str = ""
    cwd: str = ""
    example_texts: str = ""
    resumed_from: str = ""
    project_dir: str = ""
    workflow: str = ""
    commands: list[str] = field(default_factory=list)
    project_outputs: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    wandb_logger: dict[str, Any] = field(default_factory=dict)
    """The W&B logger chained before colabot's own (empty: none)."""
    wandb_offline: bool = False
    """The online run was refused by W&B, so training logs offline."""
    data_fingerprint: str = ""
    """A fingerprint of the training data's content (train and dev, or a project's assets);
    '' when there is none to take."""


def read_plan(work: Path) -> TrainPlan:
    """The plan the prepare step wrote into a job's work folder."""
    plan = load(TrainPlan, work / PLAN_FILE)
    if plan is None:
        raise FileNotFoundError(f"the prepare step wrote no plan in {work}")
    return plan


def emit(event: str, **data: Any) -> None:
    """Print one machine-readable event line for the kind, at once."""
    print(MACHINE_PREFIX + json.dumps({"event": event, **data}), flush=True)
