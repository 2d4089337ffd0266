"""GPU-hours from step spans: clipped to the period, running steps count up to now."""

from __future__ import annotations

import pytest

from workers.executors.settings import gres_gpus
from workers.sharing.accounting import StepSpan, Usage, usage, used_gpu_hours

H = 3600.0


def test_gpu_hours_are_step_time_times_gpus_and_cpu_steps_count_wall_hours() -> None:
    spans = [
        StepSpan(1, "@alice", 0.0, 2 * H, gpus=2),
        StepSpan(1, "@alice", 2 * H, 3 * H, gpus=0),
        StepSpan(2, "@bob", 0.0, None, gpus=1),
    ]
    found = usage(spans, since=0.0, now=5 * H)
    rounded = [
        Usage(u.owner_id, u.name, round(u.gpu_hours, 6), round(u.cpu_hours, 6)) for u in found
    ]
    assert rounded == [Usage(2, "@bob", 5.0, 0.0), Usage(1, "@alice", 4.0, 1.0)]


def test_a_period_counts_only_the_time_inside_it() -> None:
    spans = [StepSpan(1, "@alice", 0.0, 10 * H, gpus=1), StepSpan(1, "@alice", 0, 1 * H, 1)]
    assert used_gpu_hours(spans, 1, since=8 * H, now=20 * H) == pytest.approx(2.0)
    assert used_gpu_hours(spans, 2, since=0.0, now=20 * H) == 0.0


@pytest.mark.parametrize(
    ("text", "gpus"),
    [
        ("gpu:2", 2),
        ("gpu:a100:1", 1),
        ("gpu", 1),
        ("", 0),
        ("(null)", 0),
        ("gpu:a100:2(S:0-1),gpu:1", 3),
        ("tmpdisk:100", 0),
    ],
)
def test_slurm_gres_counts_gpus_one_way_for_settings_and_sinfo(text: str, gpus: int) -> None:
    assert gres_gpus(text) == gpus
