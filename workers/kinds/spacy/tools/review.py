"""The texts a pipeline is least sure of, for a person to review after inference.

What "sure" means depends on what the pipeline can honestly say:
- a text classifier's probabilities: the margin between the two likeliest categories of an
  exclusive ``textcat``, and for ``textcat_multilabel`` how near a category is to the 0.5
  threshold (smaller: less sure);
- a NER-only pipeline: the beam search's probability of each entity (and of each span it
  considered but did not choose). spaCy trains NER greedily, so these are approximate and
  often overconfident; the summary says so;
- anything else: no confidence, and the summary says that instead.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TEXTCAT = "textcat"
NER = "ner"
EXCLUSIVE_FACTORIES = frozenset({"textcat"})
MULTILABEL_FACTORIES = frozenset({"textcat_multilabel"})
NER_FACTORIES = frozenset({"ner", "beam_ner"})
BEAM_WIDTH = 16
BEAM_DENSITY = 0.0001
BEAM_BATCH = 256
"""Docs kept for one beam search at most (their tensors are held until it runs)."""
TEXT_KEPT = 200
"""Characters of a text kept in the review list (the summary cuts it shorter)."""

Span = tuple[int, int, str]


@dataclass(frozen=True)
class Doubt:
    """One text and how sure the pipeline is of it (0: not at all, 1: fully)."""

    confidence: float
    position: int
    id: Any
    text: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "id": self.id,
            "text": self.text[:TEXT_KEPT],
            "confidence": round(self.confidence, 6),
            "detail": self.detail,
        }


def textcat_margin(
    cats: Mapping[str, float], labels: Sequence[str], exclusive: bool
) -> tuple[float, str]:
    """(margin, what it rests on) for one text classifier's labels: top-1 minus top-2 for an
    exclusive one, the smallest distance from 0.5 for a multi-label one. (1.0, '') when
    there is nothing to compare."""
    scored = sorted(((float(cats[k]), k) for k in labels if k in cats), reverse=True)
    if exclusive:
        if len(scored) < 2:
            return 1.0, ""
        (p1, l1), (p2, l2) = scored[0], scored[1]
        return p1 - p2, f"{l1} {p1:.2f} vs {l2} {p2:.2f}"
    if not scored:
        return 1.0, ""
    p, label = min(scored, key=lambda pl: (abs(pl[0] - 0.5), pl[1]))
    return abs(p - 0.5), f"{label} {p:.2f} (threshold 0.5)"


def ner_confidence(
    scored: Mapping[Span, float], chosen: Iterable[Span], text_of: Callable[[int, int], str]
) -> tuple[float, str]:
    """(confidence, what it rests on) of one text's entities from the beam's probabilities:
    the lowest probability of a chosen entity, or of a span not being one. 1.0 when the
    beam considered no entity at all."""
    chosen = set(chosen)
    confidence, detail = 1.0, ""
    for span in sorted(chosen | set(scored)):
        p = min(1.0, max(0.0, float(scored.get(span, 0.0))))
        sure = p if span in chosen else 1.0 - p
        if sure < confidence:
            start, end, label = span
            maybe = "" if span in chosen else "maybe "
            confidence, detail = sure, f"{maybe}{label} {text_of(start, end)!r} {p:.2f}"
    return confidence, detail


class Review:
    """Keeps the ``limit`` least confident texts seen, in the order seen on ties."""

    def __init__(self, nlp: Any, limit: int) -> None:
        self.limit = limit
        factories = dict(nlp.pipe_factories)
        self.textcats = [
            (name, tuple(nlp.get_pipe(name).labels), factory in EXCLUSIVE_FACTORIES)
            for name, factory in factories.items()
            if factory in EXCLUSIVE_FACTORIES | MULTILABEL_FACTORIES
        ]
        ner = next((n for n, f in factories.items() if f in NER_FACTORIES), None)
        self.ner = nlp.get_pipe(ner) if ner is not None and not self.textcats else None
        self.method = TEXTCAT if self.textcats else NER if self.ner is not None else ""
        self.note = ""
        self._heap: list[tuple[float, int, Doubt]] = []
        self._pending: list[tuple[int, Any, Any]] = []

    @property
    def active(self) -> bool:
        """Whether texts are being scored (a limit, and a way to score them)."""
        return self.limit > 0 and bool(self.method)

    def add(self, position: int, record_id: Any, doc: Any) -> None:
        """Score one annotated doc (NER docs wait for a batch of them)."""
        if not self.active:
            return
        if self.method == TEXTCAT:
            margins = [textcat_margin(doc.cats, labels, ex) for _, labels, ex in self.textcats]
            margin, detail = min(margins, key=lambda m: m[0])
            self._keep(Doubt(margin, position, record_id, doc.text, detail))
            return
        self._pending.append((position, record_id, doc))
        if len(self._pending) >= BEAM_BATCH:
            self._score_pending()

    def _keep(self, doubt: Doubt) -> None:
        heapq.heappush(self._heap, (-doubt.confidence, -doubt.position, doubt))
        if len(self._heap) > self.limit:
            heapq.heappop(self._heap)

    def _score_pending(self) -> None:
        pending, self._pending = self._pending, []
        if not pending or self.ner is None:
            return
        docs = [doc for _, _, doc in pending]
        chosen = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in docs]
        for doc in docs:
            # Entities already set bind the beam to them (they would score 1.0): clear them.
            doc.set_ents([], default="missing")
        try:
            beams = self.ner.beam_parse(docs, beam_width=BEAM_WIDTH, beam_density=BEAM_DENSITY)
            scored = self.ner.scored_ents(beams)
        except Exception as exc:  # a custom NER may have no beam: the list is only a help
            self.method, self._heap = "", []
            self.note = f"confidence could not be computed ({type(exc).__name__}: {exc})"
            return
        for (position, record_id, doc), spans, scores in zip(pending, chosen, scored, strict=True):
            confidence, detail = ner_confidence(scores, spans, _span_text(doc))
            self._keep(Doubt(confidence, position, record_id, doc.text, detail))

    def result(self) -> dict[str, Any]:
        """``{"method", "note", "items"}``: the least confident first; empty items when off."""
        if self.limit > 0 and self.method == NER:
            self._score_pending()
        doubts = sorted((d for _, _, d in self._heap), key=lambda d: (d.confidence, d.position))
        note = self.note
        if self.limit > 0 and not self.method and not note:
            note = "confidence is not available for this pipeline (it has no textcat or ner)"
        return {"method": self.method, "note": note, "items": [d.to_dict() for d in doubts]}


def _span_text(doc: Any) -> Callable[[int, int], str]:
    def text(start: int, end: int) -> str:
        return str(doc[start:end].text)

    return text
