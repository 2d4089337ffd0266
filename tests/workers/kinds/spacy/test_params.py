"""spaCy requests checked at submit."""

from __future__ import annotations

import pytest

from tests.workers.kinds.helpers import train_spec
from workers.errors import SpecError
from workers.jobs import Action, JobSpec
from workers.kinds.registry import default_registry


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (
            train_spec({"config": "c.cfg"}),
            "inputs.train",
            "missing: with a single .cfg config, give train=<.spacy file>",
        ),
        (train_spec({"config": "c.cfg", "train": "t.spacy"}), "inputs.dev", "missing"),
        (train_spec({}), "inputs.config", "missing"),
        (train_spec({"config": "example"}, gpu="fast"), "params.gpu", "must be auto, cpu"),
        (
            train_spec({"config": "example"}, **{"paths.train": "x.spacy"}),
            "params.paths.train",
            "give the training data as the train= input",
        ),
        (
            train_spec({"config": "example"}, **{"training.max_steps": "5", "max_steps": "5"}),
            "params.training.max_steps",
            "give either training.max_steps or max_steps",
        ),
        (train_spec({"config": "example", "train": "t.spacy"}), "inputs", "no inputs"),
        (train_spec({"config": "example"}, colour="red"), "params.colour", "unknown parameter"),
        (
            JobSpec("spacy", Action.INFER, {"model": "m", "texts": "a.csv"}),
            "inputs.texts",
            "must be a .txt, .jsonl or .spacy file, got a.csv",
        ),
        (JobSpec("spacy", Action.INFER, {"model": "m"}), "inputs.texts", "missing"),
    ],
)
def test_specs_are_checked_at_submit(spec: JobSpec, field: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        default_registry().validate(spec)
    assert caught.value.field == field
    assert message in caught.value.message


def test_dotted_overrides_are_accepted_as_text() -> None:
    spec = train_spec({"config": "example"}, **{"training.dropout": "0.2", "max_steps": "30"})
    clean = default_registry().validate(spec)
    assert clean.params["training.dropout"] == "0.2" and clean.params["max_steps"] == 30
    assert clean.params["gpu"] == "auto" and clean.params["package"] is False
    assert default_registry().validate(clean) == clean
