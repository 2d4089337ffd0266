"""Helpers for the job kinds' tests: empty files, a spaCy training spec."""

from __future__ import annotations

from pathlib import Path

from workers.jobs import Action, JobSpec


def touch(root: Path, *names: str) -> None:
    """Create empty files (and their folders) under root."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def train_spec(inputs: dict[str, str], **params: object) -> JobSpec:
    """A spaCy training spec; parameters are given as chat text would give them."""
    return JobSpec("spacy", Action.TRAIN, inputs, {k: str(v) for k, v in params.items()})
