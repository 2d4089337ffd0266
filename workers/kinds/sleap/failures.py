"""Why a SLEAP step failed, in plain words, from the last lines it printed."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from workers.kinds.sleap.progress import PredictError, parse_gui_line


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
