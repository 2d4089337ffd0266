"""The spaCy test data: a tiny NER corpus (DocBins), a blank-English NER config that trains in
a few steps, sample texts in each supported format, and a pipeline trained on it with spaCy's
own command line. spaCy is imported only inside these helpers (or in their subprocesses), so
tests that never use it do not pay for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SPACY_TEXTS = (
    "Grace Lee loved the trip to Oslo last year.",
    "In Lagos, Jonas Berg hated the food.",
    "Yesterday Emma Stone enjoyed visiting Tokyo.",
)


@dataclass(frozen=True)
class SpacyCorpus:
    """Paths of the generated spaCy test data."""

    root: Path
    config: Path
    train: Path
    dev: Path
    texts_txt: Path
    texts_jsonl: Path
    texts_spacy: Path


def write_spacy_corpus(dest: Path, *, max_steps: int = 20, eval_frequency: int = 10) -> SpacyCorpus:
    """Write a small NER dataset, a config that trains it quickly and sample texts."""
    import spacy
    from spacy.tokens import DocBin

    from workers.kinds.spacy.tools.example import write_corpus

    write_corpus(
        dest, sizes=(40, 12), pipeline=["ner"], max_steps=max_steps, eval_frequency=eval_frequency
    )
    (dest / "texts.txt").write_text("\n".join(SPACY_TEXTS) + "\n\n", encoding="utf-8")
    with (dest / "texts.jsonl").open("w", encoding="utf-8") as handle:
        for i, text in enumerate(SPACY_TEXTS):
            handle.write(json.dumps({"id": f"doc-{i}", "text": text, "extra": i}) + "\n")
    nlp = spacy.blank("en")
    texts = DocBin()
    for text in SPACY_TEXTS:
        texts.add(nlp.make_doc(text))
    texts.to_disk(dest / "texts.spacy")
    return SpacyCorpus(
        root=dest,
        config=dest / "config.cfg",
        train=dest / "train.spacy",
        dev=dest / "dev.spacy",
        texts_txt=dest / "texts.txt",
        texts_jsonl=dest / "texts.jsonl",
        texts_spacy=dest / "texts.spacy",
    )


def train_spacy_directly(corpus: SpacyCorpus, output: Path) -> Path:
    """Train the corpus's config with spaCy's own command line; return model-best."""
    argv = [
        sys.executable,
        "-m",
        "workers.kinds.spacy.tools",
        "spacy",
        "--no-torch",
        "train",
        str(corpus.config),
        "--output",
        str(output),
        "--paths.train",
        str(corpus.train),
        "--paths.dev",
        str(corpus.dev),
    ]
    env = {**os.environ, "SPACY_CONFIG_OVERRIDES": ""}
    subprocess.run(argv, check=True, capture_output=True, env=env, timeout=300)
    return output / "model-best"


def copy_spacy_corpus(corpus: SpacyCorpus, folder: Path) -> SpacyCorpus:
    """The corpus copied into ``folder`` (so a test may change or move its files)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, path in vars(corpus).items():
        if name != "root":
            paths[name] = folder / path.name
            paths[name].write_bytes(path.read_bytes())
    return SpacyCorpus(root=folder, **paths)
