"""Pure views of the runtime: /runtime."""

from __future__ import annotations

from bot import runtime_views
from bot.runtime import GpuInfo, MachineFacts, RuntimeClock
from tests.helpers.views import NOW


def test_runtime_view_with_and_without_gpu() -> None:
    clock = RuntimeClock(NOW - 3600, "machine start", 12 * 3600)
    facts = MachineFacts(False, 2, 10.0, 1.0, 8.0, 50.0, 100.0)
    text = runtime_views.runtime_view(facts, clock, NOW).text
    assert "GPU: none" in text and "time left: 11h 0m of 12 h" in text
    gpu = MachineFacts(
        True, 8, 5.0, 1.0, 8.0, 50.0, 100.0, gpus=[GpuInfo("Tesla T4", 1024, 15360, 40)]
    )
    assert (
        "GPU: Tesla T4, 1.0 of 15.0 GB used, 40% busy"
        in runtime_views.runtime_view(gpu, clock, NOW).text
    )
