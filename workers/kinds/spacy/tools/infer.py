"""spaCy inference: read texts (.txt, .jsonl or .spacy), run a trained pipeline over them,
write one JSONL row per input and count what was predicted.

spaCy is imported only once the device is chosen (and PyTorch blocked when not needed).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from workers.kinds.spacy.plan import BEST, TEXT_SUFFIXES, Request, TrainPlan, emit
from workers.kinds.spacy.tools.device import block_torch, choose_device, needs_torch, probe_gpu
from workers.kinds.spacy.tools.errors import ToolError
from workers.kinds.spacy.tools.files import find_pipeline, materialise
from workers.kinds.spacy.tools.review import Review


@dataclass(frozen=True)
class Inference:
    """Which pipeline runs over which texts, on which device."""

    model: Path
    texts: Path
    gpu: str


def inference_of(request: Request, plan: TrainPlan | None) -> Inference:
    """What to annotate: the request's model and texts, or, after training the example, the
    new model-best over the example's texts on the device training used."""
    if request.action == "infer":
        if request.model is None or request.texts is None:
            raise ToolError("inference needs a model and texts")
        return Inference(Path(request.model), Path(request.texts), request.gpu)
    if plan is None or not plan.example_texts:
        raise ToolError("there is nothing to run inference on (no example texts)")
    gpu = str(plan.gpu_id) if plan.gpu_id >= 0 else "cpu"
    return Inference(Path(plan.output) / BEST, Path(plan.example_texts), gpu)


@dataclass(frozen=True)
class TextRecord:
    """One input to annotate: its id, and its text or why it could not be read."""

    id: Any
    text: str = ""
    error: str = ""


def text_records(lines: Iterable[str], jsonl: bool, text_key: str) -> Iterator[TextRecord]:
    """Records from the lines of a .txt (one text per line) or .jsonl file; blank lines skip.

    A .jsonl line's id is its ``id`` field when it has one, else the line number.
    """
    for number, line in enumerate(lines, 1):
        stripped = line.rstrip("\r\n")
        if not stripped.strip():
            continue
        if not jsonl:
            yield TextRecord(number, stripped)
            continue
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            yield TextRecord(number, error=f"line {number} is not JSON: {exc}")
            continue
        if not isinstance(data, dict) or not isinstance(data.get(text_key), str):
            yield TextRecord(number, error=f"line {number} has no {text_key!r} text")
            continue
        yield TextRecord(data.get("id", number), data[text_key])


def count_records(path: Path) -> int:
    """Non-blank lines of a text file (the docs a .txt or .jsonl file holds)."""
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


@dataclass
class PredictionStats:
    """Counts over the predictions written, and the first few rows as a sample."""

    docs: int = 0
    errors: int = 0
    entities: Counter[str] = field(default_factory=Counter)
    top_categories: Counter[str] = field(default_factory=Counter)
    sample: list[dict[str, Any]] = field(default_factory=list)
    first_error: str = ""

    def add(self, row: Mapping[str, Any]) -> None:
        """Count one output row."""
        if "error" in row:
            self.errors += 1
            self.first_error = self.first_error or f"{row.get('id')}: {row['error']}"
            return
        if len(self.sample) < 3:
            self.sample.append(dict(row))
        self.docs += 1
        self.entities.update(str(e["label"]) for e in row.get("entities") or [])
        cats = dict(row.get("cats") or {})
        if cats:
            self.top_categories[max(cats, key=lambda k: float(cats[k]))] += 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "docs": self.docs,
            "errors": self.errors,
            "entities": dict(self.entities),
            "top_categories": dict(self.top_categories),
            "sample": self.sample,
            "first_error": self.first_error,
        }


def prediction_row(record: TextRecord, doc: Any) -> dict[str, Any]:
    """The JSONL row for one annotated doc (or the record's error)."""
    if record.error:
        return {"id": record.id, "error": record.error}
    return {
        "id": record.id,
        "text": doc.text,
        "entities": [
            {"text": e.text, "label": e.label_, "start_char": e.start_char, "end_char": e.end_char}
            for e in doc.ents
        ],
        "cats": {k: round(float(v), 6) for k, v in doc.cats.items()},
    }


def run_inference(request: Request, order: Inference) -> dict[str, Any]:
    """Annotate the texts with the model; write JSONL rows; return the stats (with the
    texts the model is least sure of, when ``request.suggest`` asks for them)."""
    texts = order.texts
    suffix = texts.suffix.lower()
    if texts.is_dir() or suffix not in TEXT_SUFFIXES:
        raise ToolError(f"{texts.name}: texts must be a .txt, .jsonl or .spacy file")
    model = find_pipeline(materialise(order.model, request.work_dir, "model-input"))
    if not needs_torch((model / "config.cfg").read_text(encoding="utf-8")):
        block_torch()
    gpu_id, note = choose_device(order.gpu, probe_gpu, "inference runs")
    emit("device", note=note)
    emit("stage", text=f"loading the pipeline {model.name}")
    import spacy
    from thinc.api import require_gpu

    if gpu_id >= 0:
        require_gpu(gpu_id)
    nlp = spacy.load(model)
    records, total = _records(texts, suffix, request.text_key, nlp)
    stats = PredictionStats()
    review = Review(nlp, request.suggest)
    request.predictions.parent.mkdir(parents=True, exist_ok=True)
    with request.predictions.open("w", encoding="utf-8") as out:
        _annotate(nlp, records, total, request.batch_size, out, stats, review)
    result = stats.to_dict()
    if request.suggest > 0:
        result["review"] = review.result()
    return result


def _records(texts: Path, suffix: str, text_key: str, nlp: Any) -> tuple[Iterator[TextRecord], int]:
    if suffix == ".spacy":
        from spacy.tokens import DocBin

        try:
            docbin = DocBin().from_disk(texts)
        except ValueError:
            raise ToolError(f"{texts.name} is not a spaCy DocBin (.spacy) file") from None
        # Only the text goes on: the DocBin's own annotations must not leak into predictions.
        docs = docbin.get_docs(nlp.vocab)
        return (TextRecord(i, doc.text) for i, doc in enumerate(docs)), len(docbin)
    jsonl = suffix in (".jsonl", ".ndjson")
    return _file_records(texts, jsonl, text_key), count_records(texts)


def _file_records(path: Path, jsonl: bool, text_key: str) -> Iterator[TextRecord]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        yield from text_records(handle, jsonl, text_key)


def _annotate(
    nlp: Any,
    records: Iterator[TextRecord],
    total: int,
    batch_size: int,
    out: IO[str],
    stats: PredictionStats,
    review: Review,
) -> None:
    emit("docs", done=0, total=total)
    done, last = 0, time.monotonic()
    pairs = ((record.text, record) for record in records)
    for doc, record in nlp.pipe(pairs, as_tuples=True, batch_size=batch_size):
        row = prediction_row(record, doc)
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        stats.add(row)
        if not record.error:
            review.add(done, record.id, doc)
        done += 1
        if time.monotonic() - last >= 0.5:
            emit("docs", done=done, total=total)
            last = time.monotonic()
    emit("docs", done=done, total=max(total, done))
