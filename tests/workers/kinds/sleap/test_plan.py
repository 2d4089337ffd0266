"""The files the SLEAP kind and its tools exchange."""

from __future__ import annotations

import dataclasses

from workers.kinds.sleap.plan import ModelPlan, Plan, PredictPlan
from workers.store.records import build


def test_the_plan_round_trips_through_json() -> None:
    plan = Plan(
        action="train",
        summary="s",
        models=[ModelPlan(1, "centroid", "r", "c", "d", "f", 3)],
        predictions=[PredictPlan("v.mp4", ["f"], "o.slp", peak_threshold=0.1)],
    )
    again = build(Plan, dataclasses.asdict(plan))
    assert again == plan
