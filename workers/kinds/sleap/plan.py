"""The files the SLEAP kind and its job program pass to each other, as plain dataclasses.

The kind writes ``request.json`` (inputs, params, resume point); the prepare step answers
with ``plan.json`` (the models to train, the predictions to make); the last step writes
``result.json`` (outputs and summary). All live in the job's ``work`` folder. Light imports
only: the kind reads these in the bot process.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers.kinds.plans import load

PLAN = "plan.json"
RESULT = "result.json"
VIEWS = "views.json"
"""What the preview step drew (a clip, the frames to label next), kept apart from result.json
so that drawing can fail or run again without touching the predictions' record."""
FINISHED = "finished.json"
STOPPED = "stopped-early.json"
"""The run names of the models whose training was stopped early (the kind writes it)."""
CHECKPOINT = "sleap-resume"
FINISHED_MARK = "FINISHED"
HISTORY = "history.csv"


@dataclass
class Request:
    """What a job asks for: resolved input paths, params, config overrides, resume point."""

    action: str
    workdir: str
    inputs: dict[str, list[str]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)
    attempt: int = 1
    resume_from: str | None = None
    wandb: dict[str, str] = field(default_factory=dict)
    """The job's W&B run (mode, project, entity, name); empty when it logs to none."""
    cache: str = ""
    """Where the tools keep what they can use again (generated configs); '' for their own."""

    @property
    def work(self) -> Path:
        """The job's scratch folder."""
        return Path(self.workdir) / "work"

    @property
    def outputs(self) -> Path:
        """The job's outputs folder."""
        return Path(self.workdir) / "outputs"


@dataclass
class ModelPlan:
    """One model to train (or already trained by an earlier attempt)."""

    index: int
    head: str
    run_name: str
    config: str
    run_dir: str
    final_dir: str
    max_epochs: int
    start_epoch: int = 0
    skip: bool = False
    history: str = ""
    earlier_best: str = ""
    steps_per_epoch: int = 0
    """Training steps in one epoch, as far as the config tells (0: learnt as it trains)."""


@dataclass
class PredictPlan:
    """One ``sleap-nn predict`` run."""

    data: str
    models: list[str]
    output: str
    only_suggested_frames: bool = False
    tracking: bool = False
    frames: str = ""
    batch: int | None = None
    peak_threshold: float | None = None
    max_instances: int | None = None

    @property
    def on_video(self) -> bool:
        """Whether it predicts on a video (not on the frames of a labels file)."""
        return not self.data.lower().endswith(".slp")


@dataclass
class Plan:
    """What the prepare step decided."""

    action: str
    summary: str = ""
    notes: list[str] = field(default_factory=list)
    accelerator: str = "auto"
    models: list[ModelPlan] = field(default_factory=list)
    predictions: list[PredictPlan] = field(default_factory=list)
    cwd: str = ""
    data: str = ""
    """A fingerprint of the training data's content (:func:`workers.quality.fingerprint`):
    two trainings on the same data have the same one ('' for inference)."""


@dataclass
class OutputRecord:
    """An output for the kind's ``collect``."""

    path: str
    role: str
    label: str = ""
    photo: bool = False
    video: bool = False
    """An MP4 to send as a video that plays in the chat."""
    album: str = ""
    """Pictures with the same album name are sent together as one album."""


@dataclass
class Result:
    """What the job left: outputs, a summary line, metrics."""

    outputs: list[OutputRecord] = field(default_factory=list)
    summary: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)
    """How good the trained models are on held-out data and what they learnt from, as
    :meth:`workers.quality.Quality.to_dict` writes it (empty after inference)."""


def set_aside(folder: Path, work: Path, tag: str) -> None:
    """Move ``folder`` to ``work/stale/<name>.<tag>``, replacing whatever was set aside there."""
    target = work / "stale" / f"{folder.name}.{tag}"
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder.replace(target)


def load_request(path: Path) -> Request:
    """Read request.json."""
    request = load(Request, path)
    if request is None:
        raise FileNotFoundError(f"no request at {path}")
    return request


def load_plan(work: Path) -> Plan | None:
    """The plan in a job's work folder, if the prepare step wrote one."""
    return load(Plan, work / PLAN)


def load_result(work: Path) -> Result:
    """The result in a job's work folder (empty when there is none)."""
    return load(Result, work / RESULT) or Result()


def load_views(work: Path) -> Result:
    """What the preview step drew (empty when it did not run)."""
    return load(Result, work / VIEWS) or Result()
