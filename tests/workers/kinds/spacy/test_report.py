"""The summaries of finished spaCy jobs."""

from __future__ import annotations

from typing import Any

from workers.kinds.spacy.report import (
    inference_summary,
    main_score_keys,
    training_summary,
)


def test_training_summary_names_the_main_scores_and_the_best_step() -> None:
    events: list[dict[str, Any]] = [
        {"event": "setup", "pipeline": ["tok2vec", "ner"], "score_weights": {"ents_f": 1.0}},
        {"event": "eval", "step": 0, "epoch": 0, "best_step": 0},
        {"event": "eval", "step": 60, "epoch": 9, "best_step": 40},
    ]
    performance = {"ents_f": 0.951, "ents_p": 0.9, "ner_loss": 3.2, "ents_per_type": {}}
    summary, metrics = training_summary(events, performance, "the CPU")
    assert summary == (
        "spaCy pipeline (tok2vec, ner) trained on the CPU for 60 steps (9 epochs).\n"
        "model-best: ents_f 0.951 (best at step 40)"
    )
    assert metrics == {
        "ents_f": 0.951,
        "ents_p": 0.9,
        "ner_loss": 3.2,
        "steps": 60.0,
        "best_step": 40.0,
    }


def test_main_scores_fall_back_to_well_known_ones() -> None:
    performance = {"token_acc": 1.0, "cats_score": 0.7, "textcat_loss": 1.0, "speed": 5.0}
    assert main_score_keys(performance, {}) == ["cats_score"]
    assert main_score_keys({"custom": 0.5, "speed": 1.0}, {}) == ["custom"]


def test_inference_summary_counts_and_samples() -> None:
    stats = {
        "docs": 3,
        "errors": 1,
        "first_error": "4: line 4 has no 'text' text",
        "entities": {"PERSON": 3, "GPE": 2},
        "top_categories": {"POSITIVE": 2, "NEGATIVE": 1},
        "sample": [
            {
                "id": "a",
                "text": "Grace Lee loved Oslo.",
                "entities": [{"text": "Grace Lee", "label": "PERSON"}],
                "cats": {"POSITIVE": 0.9, "NEGATIVE": 0.1},
            },
            {"id": "b", "text": "Nothing here.", "entities": [], "cats": {}},
        ],
    }
    assert inference_summary(stats).splitlines() == [
        "spaCy inference: 3 docs → predictions.jsonl",
        "1 inputs could not be read, e.g. 4: line 4 has no 'text' text",
        "entities: 5 (PERSON 3, GPE 2)",
        "most frequent category: POSITIVE (2 of 3 docs)",
        "sample:",
        "a: Grace Lee loved Oslo. → PERSON 'Grace Lee'; POSITIVE 0.90",
        "b: Nothing here. → no entities",
    ]
