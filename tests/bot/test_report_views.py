"""Pure views of reports across jobs: a comparison, GPU-hours per person."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bot import report_views
from tests.helpers.views import NOW, SCORES, job
from workers.engine import Comparison
from workers.jobs import JobState
from workers.quality import ModelScores, Quality, Score
from workers.sharing.accounting import Usage


def test_compare_view_puts_scores_side_by_side_and_names_what_differs() -> None:
    later = Quality(
        "d1",
        (
            ModelScores(
                "single_instance", "val", (Score("mOKS", 0.781), Score("dist", 2.1, False, "px"))
            ),
        ),
        {"epochs": 20},
    )
    first = job(JobState.SUCCEEDED, finished_at=NOW)
    second = dataclasses.replace(first, id=9)
    both = Comparison(first, second, SCORES, later, None, "a <folder> is missing")
    text = report_views.compare_view(both).text
    assert text.splitlines() == [
        "<b>#7 vs #9</b> (selftest training)",
        "<b>single_instance (val)</b>",
        "<pre>             #7      #9",
        "mOKS      0.712   0.781  +0.069",
        "dist px     2.7     2.1    -0.6</pre>",
        "<b>centroid (val)</b>: #7 not evaluated: too few frames; #9 has no such model",
        "differing parameters (#7 → #9): epochs 10 → 20",
        "same training data",
        "No loss picture: a &lt;folder&gt; is missing",
    ]
    drawn = Comparison(first, second, None, None, Path("both.png"))
    assert report_views.compare_view(drawn).text.splitlines()[1:] == [
        "#7 kept no held-out scores.",
        "#9 kept no held-out scores.",
        "differing parameters (#7 → #9): none",
    ]
    assert report_views.compare_caption(drawn) == "#7 vs #9 (selftest): loss"


def test_usage_shows_ones_own_hours_against_the_quota_and_an_admin_everyones() -> None:
    week = [Usage(1, "@alice", 3.5, 0.25), Usage(2, "Bob", 1.0, 0.0), Usage(None, "", 0.5, 0.0)]
    total = [*week, Usage(1, "@alice", 10.0, 0.0)]
    mine = report_views.gpu_usage_view(week, total, 1, quota=20).text
    assert "this week: 3.50 of 20 GPU-hours · 0.25 CPU wall-hours" in mine
    assert "in total: 13.50 GPU-hours · 0.25 CPU wall-hours" in mine
    assert "Everyone" not in mine
    board = report_views.gpu_usage_view(week, total, 3, everyone=True).text
    assert "this week: 0.00 GPU-hours" in board
    assert "• @alice: 3.50 GPU-h · 0.25 CPU-h" in board and "• Bob: 1.00 GPU-h" in board
    assert "• jobs without an owner: 0.50 GPU-h" in board
