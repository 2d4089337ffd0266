"""Choosing the device, and keeping PyTorch out when a pipeline does not need it."""

from __future__ import annotations

import pytest

from workers.kinds.spacy.tools.device import GpuProbe, choose_device, needs_torch
from workers.kinds.spacy.tools.errors import ToolError

NO_CUPY = GpuProbe(False, problem="CuPy is not installed")


NO_GPU = GpuProbe(True, problem="CuPy sees no GPU")


ONE_GPU = GpuProbe(True, ("Tesla T4",))


@pytest.mark.parametrize(
    ("request_", "probe", "expected"),
    [
        ("auto", ONE_GPU, (0, "training on GPU 0 (Tesla T4)")),
        ("auto", NO_CUPY, (-1, "training on the CPU: CuPy is not installed")),
        ("auto", NO_GPU, (-1, "training on the CPU: CuPy sees no GPU")),
        ("cpu", ONE_GPU, (-1, "training on the CPU (gpu=cpu)")),
        ("0", ONE_GPU, (0, "training on GPU 0 (Tesla T4)")),
    ],
)
def test_choose_device(request_: str, probe: GpuProbe, expected: tuple[int, str]) -> None:
    assert choose_device(request_, lambda: probe, "training") == expected


@pytest.mark.parametrize(
    ("request_", "probe", "message"),
    [
        ("0", NO_CUPY, "gpu=0 asks for a GPU, but CuPy is not installed; or use gpu=cpu"),
        ("0", NO_GPU, "gpu=0 asks for GPU 0, but CuPy sees no GPU (CuPy sees no GPU)"),
        ("1", ONE_GPU, "gpu=1 asks for GPU 1, but CuPy sees 1 GPU(s)"),
    ],
)
def test_a_gpu_that_is_not_there_is_refused(request_: str, probe: GpuProbe, message: str) -> None:
    with pytest.raises(ToolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        choose_device(request_, lambda: probe, "training")


def test_cpu_never_probes() -> None:
    def probe() -> GpuProbe:
        raise AssertionError("probed")

    assert choose_device("cpu", probe, "x")[0] == -1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[system]\ngpu_allocator = null\n[components.ner.model]\n@architectures = "x"\n', False),
        ('[system]\ngpu_allocator = "pytorch"\n', True),
        ('[components.transformer]\nfactory = "transformer"\n', True),
        ('@architectures = "spacy.TorchBiLSTMEncoder.v1"\n', True),
    ],
)
def test_needs_torch(text: str, expected: bool) -> None:
    assert needs_torch(text) is expected
