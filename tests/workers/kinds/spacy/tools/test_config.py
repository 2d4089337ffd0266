"""Checking configs and overrides; resume configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.spacy_data import SpacyCorpus
from workers.kinds.spacy.tools.config import check_config, unknown_override, write_resume_config
from workers.kinds.spacy.tools.errors import ToolError

CONFIG = {
    "paths": {"train": None, "dev": None},
    "training": {"dropout": 0.1, "batcher": {"size": {"start": 100}}},
}


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("training.dropout", None),
        ("training.batcher.size.start", None),
        ("training.batcher.size", None),
        (
            "training.dropuot",
            "unknown config key training.dropuot: [training] has no setting 'dropuot' "
            "(did you mean training.dropout?)",
        ),
        ("trainin.dropout", "unknown config key trainin.dropout: no [trainin] section"),
        ("training.dropout.rate", "unknown config key training.dropout.rate: [training.dropout]"),
    ],
)
def test_unknown_override_keys(key: str, problem: str | None) -> None:
    found = unknown_override(CONFIG, key)
    assert found == problem if problem is None else (found or "").startswith(problem)


def test_check_config_applies_overrides_and_checks_references(
    tmp_path: Path, spacy_corpus: SpacyCorpus
) -> None:
    config = check_config(
        spacy_corpus.config, [("training.dropout", "0.3")], spacy_corpus.train, spacy_corpus.dev
    )
    assert config["training"]["dropout"] == 0.3
    assert config["corpora"]["train"]["path"] == str(spacy_corpus.train)
    broken = tmp_path / "broken.cfg"
    broken.write_text(spacy_corpus.config.read_text().replace("${paths.dev}", "${paths.deev}"))
    with pytest.raises(ToolError, match=r"does not parse: .*interpolation key 'paths\.deev'"):
        check_config(broken, [], spacy_corpus.train, spacy_corpus.dev)
    broken.write_text(
        spacy_corpus.config.read_text().replace('dev_corpus = "corpora.dev"', 'dev_corpus = "x.y"')
    )
    with pytest.raises(ToolError, match=r"training.dev_corpus refers to \[x.y\]"):
        check_config(broken, [], spacy_corpus.train, spacy_corpus.dev)


def test_a_resume_config_sources_every_component(tmp_path: Path, spacy_model: Path) -> None:
    from confection import Config

    written = write_resume_config(spacy_model, tmp_path / "resume.cfg")
    config = Config().from_disk(written, interpolate=False)
    assert config["components"] == {
        "tok2vec": {"source": str(spacy_model), "component": "tok2vec"},
        "ner": {"source": str(spacy_model), "component": "ner"},
    }
    original = Config().from_disk(spacy_model / "config.cfg", interpolate=False)
    assert config["training"] == original["training"]
