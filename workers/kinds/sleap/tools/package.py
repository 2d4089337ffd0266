"""A SLEAP training package's jobs.yaml, read into typed entries with every path checked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from workers.safety.names import shown
from workers.safety.paths import Refused, relative_parts


class PackageError(ValueError):
    """A training package's jobs.yaml cannot be used; the message says why."""


@dataclass(frozen=True)
class TrainingEntry:
    """One ``training:`` entry of jobs.yaml."""

    cfg: str
    run_path: str
    train_labels: str

    @property
    def run_name(self) -> str:
        """The run folder's name (the last part of ``run_path``)."""
        return PurePosixPath(self.run_path).name


@dataclass(frozen=True)
class InferenceEntry:
    """One ``inference:`` entry of jobs.yaml."""

    data_path: str
    models: tuple[str, ...]
    output_path: str
    type: str = "labels"
    only_suggested_frames: bool = False
    tracking: bool = False


@dataclass(frozen=True)
class PackageJobs:
    """The training and inference jobs a package asks for, in order."""

    training: tuple[TrainingEntry, ...]
    inference: tuple[InferenceEntry, ...] = field(default=())


def _inside_package(path: str, what: str) -> str:
    """A relative path jobs.yaml names, as ``a/b/c``; PackageError unless it is one."""
    try:
        parts = relative_parts(path)
    except Refused as exc:
        raise PackageError(
            f"jobs.yaml: {what} '{shown(path)}' is not a path inside the package: {exc.reason}"
        ) from None
    return "/".join(parts)


def _text(entry: Mapping[str, object], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise PackageError(f"jobs.yaml: {where} has no {key}")
    return value.strip()


def _tracking_on(value: object) -> bool:
    if isinstance(value, Mapping):
        tracker = value.get("tracking.tracker", value.get("tracker"))
        return tracker not in (None, "", "none", "None")
    return bool(value)


def parse_jobs(data: object) -> PackageJobs:
    """Read a loaded jobs.yaml; raise PackageError naming what is wrong."""
    if not isinstance(data, Mapping):
        raise PackageError("jobs.yaml is not a mapping with training: and inference: lists")
    raw_training = data.get("training") or []
    raw_inference = data.get("inference") or []
    if not isinstance(raw_training, list) or not isinstance(raw_inference, list):
        raise PackageError("jobs.yaml: training: and inference: must be lists")
    if not raw_training:
        raise PackageError("jobs.yaml lists no training jobs")
    training = []
    for i, entry in enumerate(raw_training, 1):
        where = f"training job {i}"
        if not isinstance(entry, Mapping):
            raise PackageError(f"jobs.yaml: {where} is not a mapping")
        cfg = _inside_package(_text(entry, "cfg", where), "config")
        run_path = _inside_package(_text(entry, "run_path", where), "run_path")
        labels = _inside_package(_text(entry, "train_labels", where), "train_labels")
        training.append(TrainingEntry(cfg, run_path, labels))
    inference = []
    for i, entry in enumerate(raw_inference, 1):
        where = f"inference job {i}"
        if not isinstance(entry, Mapping):
            raise PackageError(f"jobs.yaml: {where} is not a mapping")
        models = entry.get("models")
        if not isinstance(models, list) or not models:
            raise PackageError(f"jobs.yaml: {where} lists no models")
        data_path = _inside_package(_text(entry, "data_path", where), "data_path")
        output = _text(entry, "output_path", where) if entry.get("output_path") else ""
        inference.append(
            InferenceEntry(
                data_path=data_path,
                models=tuple(_inside_package(str(m), "model") for m in models),
                output_path=PurePosixPath(output or f"{data_path}.predictions.slp").name,
                type=str(entry.get("type") or "labels"),
                only_suggested_frames=bool(entry.get("only_suggested_frames", False)),
                tracking=_tracking_on(entry.get("tracking")),
            )
        )
    return PackageJobs(tuple(training), tuple(inference))
