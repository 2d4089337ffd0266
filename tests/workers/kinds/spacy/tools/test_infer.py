"""Inference records and counts."""

from __future__ import annotations

from workers.kinds.spacy.tools.infer import PredictionStats, TextRecord, text_records


def test_text_records_from_txt_and_jsonl() -> None:
    assert list(text_records(["one\n", "\n", "  \n", "two\r\n"], False, "text")) == [
        TextRecord(1, "one"),
        TextRecord(4, "two"),
    ]
    lines = ['{"id": "a", "text": "x"}', "not json", '{"text": "y"}', '{"id": 5}', "[1]"]
    records = list(text_records(lines, True, "text"))
    assert [r.id for r in records] == ["a", 2, 3, 4, 5]
    assert [r.text for r in records] == ["x", "", "y", "", ""]
    assert records[1].error.startswith("line 2 is not JSON")
    assert records[3].error == "line 4 has no 'text' text"


def test_prediction_stats() -> None:
    stats = PredictionStats()
    stats.add({"id": 1, "error": "bad line"})
    for i, cats in enumerate(({"POS": 0.9, "NEG": 0.1}, {"POS": 0.2, "NEG": 0.8}, {})):
        stats.add({"id": i, "text": "t", "entities": [{"label": "GPE"}], "cats": cats})
    assert stats.to_dict() | {"sample": []} == {
        "docs": 3,
        "errors": 1,
        "entities": {"GPE": 3},
        "top_categories": {"POS": 1, "NEG": 1},
        "sample": [],
        "first_error": "1: bad line",
    }
    assert [row["id"] for row in stats.sample] == [0, 1, 2]
