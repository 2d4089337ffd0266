"""Where a SLEAP step runs: the GPU when PyTorch sees one, else the CPU, and a GPU asked for
but absent refused before anything starts.

Runs in a job subprocess; it imports torch only where a GPU driver is loaded at all.
"""

from __future__ import annotations

from pathlib import Path

from workers.kinds.sleap.tools.errors import ToolError


def gpu_driver_present() -> bool:
    """Whether a GPU driver is loaded at all (without it PyTorch cannot see a GPU)."""
    return any(
        Path(p).exists() for p in ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd")
    )


def choose_device(device: str, *, training: bool) -> tuple[str, str]:
    """(value for sleap-nn, a note for the person). Refuses a GPU that is not there."""
    if device == "cpu":
        return "cpu", "on the CPU, as asked"
    name = None
    if gpu_driver_present():
        import torch

        if torch.cuda.is_available():
            name = torch.cuda.get_device_name(0)
    if name is not None:
        chosen = ("gpu" if training else "cuda") if device == "gpu" else "auto"
        return chosen, f"on the GPU ({name})"
    if device == "gpu":
        raise ToolError(
            "device=gpu was asked for, but this machine has no usable CUDA GPU (PyTorch sees "
            "none); use device=auto or device=cpu"
        )
    return "auto", "on the CPU: no GPU found, so it will be slow"
