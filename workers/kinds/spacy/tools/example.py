"""The built-in example (/train spacy example): generated sentences about people and places,
tagged with entities (PERSON, GPE) and a liked/disliked category, with a config and sample texts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

EXAMPLE_STEPS = 200
EXAMPLE_EVAL_FREQUENCY = 40

PEOPLE = (
    "Alice Smith",
    "Bob Jones",
    "Carla Diaz",
    "David Brown",
    "Emma Stone",
    "Farid Khan",
    "Grace Lee",
    "Hiro Tanaka",
    "Ines Costa",
    "Jonas Berg",
)
PLACES = ("Paris", "London", "Berlin", "Madrid", "Rome", "Tokyo", "Boston", "Lagos", "Oslo")
LIKED = ("loved", "enjoyed", "liked", "adored")
DISLIKED = ("hated", "disliked", "loathed", "regretted")
TEMPLATES = (
    "{p} {v} the trip to {c} last year.",
    "Yesterday {p} {v} visiting {c}.",
    "In {c}, {p} {v} the food.",
    "{p} said that she {v} {c}.",
    "After a week in {c}, {p} {v} every minute.",
)
SAMPLE_TEXTS = (
    "Grace Lee loved the trip to Oslo last year.",
    "In Lagos, Jonas Berg hated the food.",
    "Yesterday Emma Stone enjoyed visiting Tokyo.",
    "After a week in Rome, Farid Khan regretted every minute.",
    "Ines Costa said that she adored Boston.",
)


@dataclass(frozen=True)
class ExampleSentence:
    """One generated sentence with its entity spans and whether it is positive."""

    text: str
    entities: tuple[tuple[int, int, str], ...]
    positive: bool


def example_sentences(count: int, seed: int) -> list[ExampleSentence]:
    """Sentences about people and places, each liked or disliked."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(count):
        person, place = rng.choice(PEOPLE), rng.choice(PLACES)
        positive = rng.random() < 0.5
        verb = rng.choice(LIKED if positive else DISLIKED)
        text = rng.choice(TEMPLATES).format(p=person, c=place, v=verb)
        spans = []
        for name, label in ((person, "PERSON"), (place, "GPE")):
            start = text.index(name)
            spans.append((start, start + len(name), label))
        sentences.append(ExampleSentence(text, tuple(sorted(spans)), positive))
    return sentences


def write_corpus(
    dest: Path,
    *,
    sizes: tuple[int, int],
    pipeline: list[str],
    max_steps: int,
    eval_frequency: int,
) -> None:
    """Write ``train.spacy`` and ``dev.spacy`` of generated sentences (``sizes`` of each) and a
    blank-English ``config.cfg`` for ``pipeline`` that trains on them for ``max_steps`` steps.

    Docs carry their entities, and their liked/disliked category when the pipeline has a textcat.
    """
    import spacy
    from spacy.cli.init_config import init_config
    from spacy.tokens import DocBin

    dest.mkdir(parents=True, exist_ok=True)
    nlp = spacy.blank("en")
    categories = "textcat" in pipeline
    for name, count, seed in (("train", sizes[0], 1), ("dev", sizes[1], 2)):
        docbin = DocBin()
        for sentence in example_sentences(count, seed):
            doc = nlp.make_doc(sentence.text)
            spans = [
                doc.char_span(start, end, label=label, alignment_mode="contract")
                for start, end, label in sentence.entities
            ]
            doc.ents = [span for span in spans if span is not None]
            if categories:
                doc.cats = {
                    "POSITIVE": float(sentence.positive),
                    "NEGATIVE": float(not sentence.positive),
                }
            docbin.add(doc)
        docbin.to_disk(dest / f"{name}.spacy")
    config = init_config(lang="en", pipeline=pipeline, optimize="efficiency")
    config["training"]["max_steps"] = max_steps
    config["training"]["eval_frequency"] = eval_frequency
    config.to_disk(dest / "config.cfg")


def make_example(dest: Path) -> Path:
    """Write a small NER + text classification dataset, its config and sample texts."""
    write_corpus(
        dest,
        sizes=(150, 40),
        pipeline=["ner", "textcat"],
        max_steps=EXAMPLE_STEPS,
        eval_frequency=EXAMPLE_EVAL_FREQUENCY,
    )
    (dest / "texts.txt").write_text("\n".join(SAMPLE_TEXTS) + "\n", encoding="utf-8")
    return dest
