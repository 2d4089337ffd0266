"""colabot's spaCy training logger, loaded with ``spacy train --code .../spacy/tools/logger.py``.

At every evaluation it prints one ``COLABOT_SPACY {...}`` JSON line (flushed, so the kind
sees it at once) with the step, epoch, losses, scores and best score so far, appends the same
record to a JSON-lines log file, and still prints spaCy's usual console table.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from spacy.training.loggers import console_logger_v3
from spacy.util import registry

from workers.kinds.spacy.plan import LOGGER_NAME, MACHINE_PREFIX
from workers.kinds.spacy.progress import best_checkpoint
from workers.kinds.spacy.tools.errors import StoppedEarly
from workers.safety.files import is_plain_file

LogStep = Callable[[dict[str, Any] | None], None]
Finalize = Callable[[], None]


def _training_totals(nlp: Any) -> dict[str, Any]:
    """max_steps, max_epochs, eval_frequency and score weights of the config being trained."""
    try:
        training = nlp.config.interpolate()["training"]
    except Exception:
        training = nlp.config["training"]
    weights = {k: v for k, v in dict(training.get("score_weights") or {}).items()}
    return {
        "max_steps": int(training.get("max_steps") or 0),
        "max_epochs": int(training.get("max_epochs") or 0),
        "eval_frequency": int(training.get("eval_frequency") or 0),
        "score_weights": {k: v for k, v in weights.items() if isinstance(v, int | float)},
    }


def eval_record(info: dict[str, Any]) -> dict[str, Any]:
    """The event for one evaluation, from the ``info`` spaCy hands the logger."""
    scores = {
        k: float(v)
        for k, v in dict(info.get("other_scores") or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    checkpoints = [(float(score), int(step)) for score, step in info.get("checkpoints") or []]
    best = best_checkpoint(checkpoints)
    return {
        "event": "eval",
        "step": int(info["step"]),
        "epoch": int(info["epoch"]),
        "score": float(info["score"]),
        "best_score": best[0] if best else None,
        "best_step": best[1] if best else None,
        # spaCy keeps updating the same losses dict, so it is copied here.
        "losses": {k: float(v) for k, v in dict(info.get("losses") or {}).items()},
        "scores": scores,
        "words": int(info.get("words") or 0),
        "seconds": float(info.get("seconds") or 0),
    }


def progress_logger(
    log_path: str | None = None, console: bool = True, stop_path: str | None = None
) -> Callable[..., tuple[LogStep, Finalize]]:
    """A logger that reports each evaluation as a JSON line (and keeps the console table).

    Once ``stop_path`` exists, training ends at the next evaluation, after spaCy saved it
    (model-best when it is the best so far, and model-last)."""
    console_setup = console_logger_v3(progress_bar=None, console_output=True) if console else None

    def setup(
        nlp: Any, stdout: IO[str] = sys.stdout, stderr: IO[str] = sys.stderr
    ) -> tuple[LogStep, Finalize]:
        """Called by spaCy when training starts; returns the per-step and final hooks."""

        def emit(record: dict[str, Any]) -> None:
            line = json.dumps(record)
            # The file first: once the line is out, the job may be stopped at any moment.
            if log_path:
                with Path(log_path).open("a", encoding="utf-8") as log:
                    log.write(line + "\n")
            print(MACHINE_PREFIX + line, file=stdout, flush=True)

        emit(
            {
                "event": "setup",
                "pipeline": list(nlp.pipe_names),
                "started": time.time(),
                **_training_totals(nlp),
            }
        )
        table_step, table_finalize = (
            console_setup(nlp, stdout, stderr) if console_setup else (lambda _i: None, lambda: None)
        )

        def log_step(info: dict[str, Any] | None) -> None:
            if info is not None:
                emit(eval_record(info))
            table_step(info)
            # A link planted at the stop file's name is not a stop, and is not followed.
            if info is not None and stop_path and is_plain_file(Path(stop_path)):
                step, epoch = int(info["step"]), int(info["epoch"])
                emit({"event": "stopped_early", "step": step, "epoch": epoch})
                raise StoppedEarly(step, epoch)

        def finalize() -> None:
            table_finalize()
            emit({"event": "end", "ended": time.time()})

        return log_step, finalize

    return setup


registry.loggers.register(LOGGER_NAME, func=progress_logger)
