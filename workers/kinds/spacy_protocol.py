"""What the spaCy kind and its job programs agree on: the lines they print, the plan the
prepare step writes, and the files a job leaves.

Both sides import this module: the kind in the bot process, the job programs
(``spacy_tools``, ``spacy_logger``) in theirs. It imports nothing heavy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workers.kinds.base import JobContext

MACHINE_PREFIX = "COLABOT_SPACY "
"""Lines starting with this carry one JSON event from the job programs to the kind."""
ERROR_PREFIX = "colabot-spacy: error: "
"""Lines starting with this explain why a job program refused to go on."""
LOGGER_NAME = "colabot.spacy_progress.v1"

PLAN_FILE = "spacy-plan.json"
INFERENCE_STATS = "inference.json"
TRAINING_DIR = "training"
TRAINING_LOG = "training-log.jsonl"
PACKAGE_DIR = "package"
PREDICTIONS = "predictions.jsonl"
BEST, LAST = "model-best", "model-last"
TEXT_SUFFIXES = (".txt", ".jsonl", ".ndjson", ".spacy")


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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainPlan:
        """The inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def read_plan(ctx: JobContext) -> TrainPlan:
    """The plan the prepare step wrote for this run."""
    data = json.loads((ctx.scratch_dir / PLAN_FILE).read_text(encoding="utf-8"))
    return TrainPlan.from_dict(data)


class ToolError(Exception):
    """A request the program refuses, with the reason in words for the chat."""


def emit(event: str, **data: Any) -> None:
    """Print one machine-readable event line for the kind, at once."""
    print(MACHINE_PREFIX + json.dumps({"event": event, **data}), flush=True)
