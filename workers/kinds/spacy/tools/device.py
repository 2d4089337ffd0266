"""Which device a spaCy job program runs on: PyTorch kept out when the pipeline does not need
it, the GPUs CuPy sees, and the choice for gpu=auto|cpu|N.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass

from workers.kinds.spacy.tools.errors import ToolError

TORCH_MARKERS = ("torch", "transformer", "curated")
CUPY_HINT = 'pip install "spacy[cuda12x]"'


def block_torch() -> None:
    """Make ``import torch`` fail, so spaCy and Thinc run without PyTorch."""
    sys.modules["torch"] = None  # type: ignore[assignment]


def needs_torch(config_text: str) -> bool:
    """Whether a pipeline config uses PyTorch (torch layers, transformers, its allocator)."""
    lowered = config_text.lower()
    return any(marker in lowered for marker in TORCH_MARKERS)


@dataclass(frozen=True)
class GpuProbe:
    """What CuPy can see: whether it loads, the GPUs, and why not when it cannot."""

    cupy: bool
    names: tuple[str, ...] = ()
    problem: str = ""

    @property
    def count(self) -> int:
        """How many GPUs CuPy sees."""
        return len(self.names)


def probe_gpu() -> GpuProbe:
    """Ask CuPy (as Thinc would) for GPUs, without importing spaCy."""
    try:
        cupy = importlib.import_module("cupy")
        importlib.import_module("cupyx")
    except ImportError:
        return GpuProbe(False, problem=f"CuPy is not installed (for the GPU: {CUPY_HINT})")
    except Exception as exc:
        return GpuProbe(False, problem=f"CuPy does not load ({type(exc).__name__}: {exc})")
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
        names = []
        for index in range(count):
            name = cupy.cuda.runtime.getDeviceProperties(index).get("name", b"GPU")
            names.append(name.decode() if isinstance(name, bytes) else str(name))
    except Exception as exc:
        return GpuProbe(True, problem=f"CuPy sees no GPU ({type(exc).__name__}: {exc})")
    return GpuProbe(True, tuple(names), "" if names else "CuPy sees no GPU")


def choose_device(request: str, probe: Callable[[], GpuProbe], doing: str) -> tuple[int, str]:
    """(spaCy's gpu id, a notice) for gpu=auto|cpu|N; ToolError when a GPU asked for is absent.

    ``doing`` starts the notice, e.g. "training".
    """
    request = request.strip().lower()
    if request == "cpu":
        return -1, f"{doing} on the CPU (gpu=cpu)"
    found = probe()
    if request == "auto":
        if found.count:
            return 0, f"{doing} on GPU 0 ({found.names[0]})"
        return -1, f"{doing} on the CPU: {found.problem}"
    wanted = int(request)
    if not found.cupy:
        raise ToolError(f"gpu={wanted} asks for a GPU, but {found.problem}; or use gpu=cpu")
    if wanted >= found.count:
        have = f"{found.count} GPU(s)" if found.count else f"no GPU ({found.problem})"
        raise ToolError(f"gpu={wanted} asks for GPU {wanted}, but CuPy sees {have}")
    return wanted, f"{doing} on GPU {wanted} ({found.names[wanted]})"


def device_name(gpu_id: int) -> str:
    """``GPU 0`` or ``the CPU`` for summaries."""
    return f"GPU {gpu_id}" if gpu_id >= 0 else "the CPU"
