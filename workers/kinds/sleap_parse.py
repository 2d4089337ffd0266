"""Pure parsing for the SLEAP kind: chat values, sleap-nn output lines, jobs.yaml and failures.

Nothing here touches files or imports a framework, so the bot process can use all of it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

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


# --------------------------------------------------------------------------- training progress


@dataclass(frozen=True)
class EpochRow:
    """One row of sleap-nn's training_log.csv (written when an epoch's validation ends).

    ``train_loss`` is the previous epoch's: sleap-nn writes the row before the training
    loss of the epoch is aggregated.
    """

    epoch: int
    train_loss: float | None
    val_loss: float | None
    learning_rate: float | None = None


def parse_log_header(line: str) -> list[str] | None:
    """The column names if ``line`` is training_log.csv's header."""
    columns = [c.strip() for c in line.strip().split(",")]
    return columns if columns and columns[0] == "epoch" else None


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_log_row(header: Sequence[str], line: str) -> EpochRow | None:
    """One data row of training_log.csv, given its header; None for anything else."""
    cells = [c.strip() for c in line.strip().split(",")]
    if len(cells) != len(header) or cells[0] == "epoch":
        return None
    row = dict(zip(header, cells, strict=True))
    epoch = _number(row.get("epoch", ""))
    if epoch is None:
        return None
    return EpochRow(
        epoch=int(epoch),
        train_loss=_number(row.get("train/loss", "")),
        val_loss=_number(row.get("val/loss", "")),
        learning_rate=_number(row.get("learning_rate", "")),
    )


def parse_log(text: str) -> list[EpochRow]:
    """Every row of a training_log.csv text."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = parse_log_header(lines[0])
    if header is None:
        return []
    return [row for line in lines[1:] if (row := parse_log_row(header, line)) is not None]


def merge_history(earlier: Sequence[EpochRow], later: Sequence[EpochRow]) -> list[EpochRow]:
    """Rows of an interrupted run followed by the rows of its continuation."""
    if not later:
        return list(earlier)
    first = min(row.epoch for row in later)
    return [row for row in earlier if row.epoch < first] + list(later)


def _row_epoch(line: str) -> int | None:
    value = _number(line.split(",", 1)[0])
    return int(value) if value is not None else None


def merge_log_text(earlier: str, later: str) -> str:
    """The training_log.csv texts of a run and of its continuation, as one log."""
    old = [line for line in earlier.splitlines() if line.strip()]
    new = [line for line in later.splitlines() if line.strip()]
    if not new:
        return "\n".join(old) + "\n" if old else ""
    if not old:
        return "\n".join(new) + "\n"
    epochs = [e for line in new[1:] if (e := _row_epoch(line)) is not None]
    first = min(epochs) if epochs else None
    kept = [
        line
        for line in old[1:]
        if (e := _row_epoch(line)) is not None and (first is None or e < first)
    ]
    return "\n".join([new[0], *kept, *new[1:]]) + "\n"


def loss_curves(
    rows: Sequence[EpochRow],
) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(epoch, train loss) and (epoch, val loss) points, train loss moved to its own epoch."""
    train = [(row.epoch - 1, row.train_loss) for row in rows if row.train_loss is not None]
    val = [(row.epoch, row.val_loss) for row in rows if row.val_loss is not None]
    return [(e, v) for e, v in train if e >= 0], val


@dataclass(frozen=True)
class BarUpdate:
    """What one refresh of the training progress bar says (epoch counted from 0)."""

    epoch: int
    batch: int
    batches: int
    loss: float | None = None
    val_loss: float | None = None


_BAR = re.compile(r"Epoch (\d+):\s*\d+%\|[^|]*\|\s*(\d+)/(\d+)")
_BAR_LOSS = re.compile(r"(?<![\w/])(?:train/)?loss=([-+\d.eE]+|nan)")
_BAR_VAL = re.compile(r"val/loss=([-+\d.eE]+|nan)")


def parse_bar_line(line: str) -> BarUpdate | None:
    """``Epoch 1: 100%|###| 1/1 [00:02<00:00, loss=0.04, val/loss=0.05]`` -> BarUpdate."""
    match = _BAR.search(line)
    if match is None:
        return None
    loss = _BAR_LOSS.search(line)
    val = _BAR_VAL.search(line)
    return BarUpdate(
        epoch=int(match.group(1)),
        batch=int(match.group(2)),
        batches=int(match.group(3)),
        loss=_number(loss.group(1).rstrip(",]")) if loss else None,
        val_loss=_number(val.group(1).rstrip(",]")) if val else None,
    )


# -------------------------------------------------------------------------- inference progress


@dataclass(frozen=True)
class PredictUpdate:
    """One ``--gui`` progress line of ``sleap-nn predict``."""

    done: int
    total: int
    rate: float | None
    eta_s: float | None


@dataclass(frozen=True)
class PredictError:
    """The ``--gui`` error line of ``sleap-nn predict``."""

    type: str
    message: str


def parse_gui_line(line: str) -> PredictUpdate | PredictError | None:
    """``{"n_processed": 4, "n_total": 400, "rate": 3.5, "eta": 112.5}`` -> PredictUpdate."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if data.get("error"):
        return PredictError(str(data.get("type", "Error")), str(data.get("message", "")))
    try:
        done, total = int(data["n_processed"]), int(data["n_total"])
    except (KeyError, TypeError, ValueError):
        return None
    return PredictUpdate(
        done, total, _optional_float(data.get("rate")), _optional_float(data.get("eta"))
    )


def _optional_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


# ---------------------------------------------------------------------------------- jobs.yaml


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
    pure = PurePosixPath(path.replace("\\", "/"))
    if not path or pure.is_absolute() or ".." in pure.parts or ":" in path:
        raise PackageError(f"jobs.yaml: {what} {path!r} is not a path inside the package")
    return pure.as_posix()


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


# ----------------------------------------------------------------------------------- failures


@dataclass(frozen=True)
class Cause:
    """A known failure: a pattern in the output and the plain-words explanation."""

    pattern: re.Pattern[str]
    explain: str


def _cause(pattern: str, explain: str) -> Cause:
    return Cause(re.compile(pattern), explain)


TOOL_ERROR = re.compile(r"^sleap_tools: error: (.+)$")

# The first matching cause wins, so the specific ones come first.
CAUSES: tuple[Cause, ...] = (
    _cause(
        r"torch\.cuda\.is_available\(\) is False|Torch not compiled with CUDA enabled|"
        r"don't know how to restore data location|Found no NVIDIA driver|"
        r"no CUDA-capable device",
        "a GPU was asked for, but this machine has no usable CUDA GPU; use device=auto or "
        "device=cpu",
    ),
    _cause(
        r"CUDA out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|"
        r"CUDA error: out of memory",
        "the GPU ran out of memory; try a smaller batch (batch=2), a smaller input scale "
        "(data_config.preprocessing.scale=0.5) or fewer filters",
    ),
    _cause(
        r"DefaultCPUAllocator: can't allocate memory|MemoryError",
        "the machine ran out of memory; try a smaller batch or a smaller input scale",
    ),
    _cause(
        r"Video does not exist or cannot be opened for reading: (?P<path>.+?)(?: \(dataset:.*)?$",
        "a video cannot be found: {path}. Put the videos in the same folder as the labels "
        "file (colabot finds them there), or use a .pkg.slp with embedded frames",
    ),
    _cause(
        r"Could not read (?P<path>.+?) with OpenCV or PyAV",
        "the video {path} cannot be read (missing, empty or in an unknown format)",
    ),
    _cause(
        r"file signature not found",
        "a labels file is not a SLEAP .slp file (it is not HDF5, or it is corrupt)",
    ),
    _cause(
        r"unable to open file: name = '(?P<path>[^']+)'",
        "a file is missing: {path}",
    ),
    _cause(
        r"Could not override '(?P<key>[^']+)'|Key '(?P<key2>[^']+)' not in '(?P<where>\w+)'",
        "unknown config key {key}{key2}: it is not a sleap-nn setting",
    ),
    _cause(r"already at '(?P<key>[^']+)'", "the config key {key} is already set"),
    _cause(
        r"ValidationError: (?P<message>.+)",
        "a config value has the wrong type: {message}",
    ),
    _cause(r"OverrideParseException", "a config override could not be read"),
    _cause(
        r"yaml\.(?:parser|scanner|composer)\.\w+Error",
        "the config file is not valid YAML",
    ),
    _cause(r"No model config found", "the config has no model_config section"),
    _cause(r"Cannot find primary config", "the config file was not found"),
    _cause(
        r"Model path does not exist: (?P<path>\S+?)\.?(?: Pass|$)",
        "the model folder {path} does not exist",
    ),
    _cause(
        r"is not in list",
        "a node name in the config (such as the anchor part) is not in the skeleton",
    ),
)

_EXCEPTION_LINE = re.compile(
    r"^(?:[\w.]+\.)?(?P<type>[A-Z]\w*(?:Error|Exception)): (?P<message>.+)$"
)


def explain_lines(lines: Iterable[str]) -> str | None:
    """A plain-words cause found in a failed step's output, or None."""
    text_lines = [line.strip() for line in lines if line.strip()]
    for line in reversed(text_lines):
        tool = TOOL_ERROR.match(line)
        if tool:
            return tool.group(1)
    for line in reversed(text_lines):
        gui = parse_gui_line(line)
        if isinstance(gui, PredictError):
            text_lines.append(f"{gui.type}: {gui.message}")
            break
    for cause in CAUSES:
        for line in reversed(text_lines):
            match = cause.pattern.search(line)
            if match:
                values = {k: v or "" for k, v in match.groupdict().items()}
                return cause.explain.format(**values)
    for line in reversed(text_lines):
        match = _EXCEPTION_LINE.match(line)
        if match:
            return f"{match.group('type')}: {match.group('message')}"
    return None
