"""How good a spaCy model is: the held-out scores per component and label from meta.json, the
fingerprint of the training data, the end-of-training card, /compare's picture, and the texts
an inference is least sure of. Real spaCy training and inference on tiny generated data."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.engine import WaitForState
from tests.helpers.spacy_data import SpacyCorpus, copy_spacy_corpus, train_spacy_directly
from tests.workers.kinds.helpers import train_spec
from tests.workers.kinds.spacy.test_kind import write_project
from workers.engine import Engine, EngineSettings
from workers.executors.local import run_briefly
from workers.jobs import Action, Job, JobSpec, JobState
from workers.kinds.base import PLOT_REFUSAL, JobContext, Outcome
from workers.kinds.plans import REQUEST, write_json
from workers.kinds.spacy.kind import SpacyKind
from workers.kinds.spacy.plan import CARD, INFERENCE_STATS, Request, read_plan
from workers.kinds.spacy.report import pipeline_scores, read_scores
from workers.kinds.spacy.tools import main
from workers.kinds.spacy.tools.example import write_corpus
from workers.quality import ModelScores, fingerprint
from workers.safety.environment import step_environment

TRAIN_TIMEOUT = 180.0
PNG = b"\x89PNG\r\n\x1a\n"
REVIEW_TEXTS = (
    "Grace Lee loved the trip to Oslo last year.",
    "In Lagos, Jonas Berg hated the food.",
    "nothing here at all",
    "Yesterday Emma Stone enjoyed visiting Tokyo.",
    "The weather was grey and the train was late.",
    "After a week in Rome, Farid Khan regretted every minute.",
    "Paris",
    "Ines Costa said that she adored Boston.",
    "we went to the place with Kofi Annan and then to Springfield",
    "Bob Jones disliked the trip to Madrid.",
)


def tagged_corpus(dest: Path, max_steps: int = 20) -> SpacyCorpus:
    """A tiny NER + textcat corpus (POSITIVE/NEGATIVE), its config and REVIEW_TEXTS."""
    write_corpus(
        dest, sizes=(40, 12), pipeline=["ner", "textcat"], max_steps=max_steps, eval_frequency=10
    )
    texts = dest / "texts.txt"
    texts.write_text("\n".join(REVIEW_TEXTS) + "\n", encoding="utf-8")
    return SpacyCorpus(
        dest, dest / "config.cfg", dest / "train.spacy", dest / "dev.spacy", texts, texts, texts
    )


@pytest.fixture(scope="module")
def tagged(tmp_path_factory: pytest.TempPathFactory) -> SpacyCorpus:
    """The NER + textcat corpus, written once for this module."""
    return tagged_corpus(tmp_path_factory.mktemp("tagged-corpus"))


@pytest.fixture(scope="module")
def tagged_model(tagged: SpacyCorpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A NER + textcat pipeline trained once for this module (its model-best)."""
    return train_spacy_directly(tagged, tmp_path_factory.mktemp("tagged-model") / "out")


@pytest.fixture
def engine_settings(
    tmp_path: Path, input_root: Path, spacy_model: Path, tagged: SpacyCorpus, tagged_model: Path
) -> EngineSettings:
    """The usual settings, with the trained models and the module's texts also allowed as
    inputs."""
    return EngineSettings(
        data_dir=tmp_path / "data",
        max_parallel_jobs=2,
        input_roots=(input_root, spacy_model.parent, tagged.root, tagged_model.parent),
    )


def collected(engine: Engine, job: Job) -> Outcome:
    """What the kind collects from a finished job's folder (its quality included)."""
    ctx = JobContext(engine.job(job.id), engine.workdir(job.id), {}, sys.executable, print)
    return SpacyKind().collect(ctx)


def scores_of(model: ModelScores) -> list[tuple[str, float | None]]:
    """A component's scores by name, in order."""
    return [(s.name, s.value) for s in model.scores]


def expected_weakest(per_type: dict[str, dict[str, float]]) -> str:
    """The lowest-F label, worked out from meta.json here ('' when all F are equal)."""
    fs = {label: scores["f"] for label, scores in per_type.items()}
    label = min(fs, key=lambda k: (fs[k], k))
    return "" if fs[label] == max(fs.values()) else f"{label} (F {fs[label]:.2f})"


def label_text(label: str, scores: dict[str, float]) -> str:
    """A label's scores as the summary shows them."""
    return f"{label} P {scores['p']:.2f} R {scores['r']:.2f} F {scores['f']:.2f}"


# ------------------------------------------------------------------------- training


async def test_training_reports_each_components_scores_from_meta_json_and_draws_a_card(
    engine: Engine, wait_for_state: WaitForState, input_root: Path, tagged: SpacyCorpus
) -> None:
    corpus = copy_spacy_corpus(tagged, input_root / "tagged")
    inputs = {"config": str(corpus.config), "train": str(corpus.train), "dev": str(corpus.dev)}
    shorter = engine.submit(train_spec(inputs, max_steps=10, gpu="cpu"))
    job = engine.submit(train_spec(inputs, max_steps=20, gpu="cpu"))
    done = await wait_for_state(engine, job.id, timeout=TRAIN_TIMEOUT)
    earlier = await wait_for_state(engine, shorter.id, timeout=TRAIN_TIMEOUT)
    assert done.state is JobState.SUCCEEDED, done.error
    assert earlier.state is JobState.SUCCEEDED, earlier.error

    outcome = collected(engine, done)
    model_best = engine.workdir(done.id) / "outputs" / "training" / "model-best"
    performance = json.loads((model_best / "meta.json").read_text())["performance"]
    quality = outcome.quality
    assert quality is not None
    assert quality.data == fingerprint([corpus.train, corpus.dev])
    assert quality.params == done.spec.params
    ner, textcat = quality.models
    assert (ner.model, ner.split, textcat.model, textcat.split) == ("ner", "dev", "textcat", "dev")
    assert scores_of(ner) == [
        ("F", performance["ents_f"]),
        ("P", performance["ents_p"]),
        ("R", performance["ents_r"]),
    ]
    assert performance["cats_score_desc"] == "macro F"
    assert scores_of(textcat) == [
        ("macro F", performance["cats_score"]),
        ("macro P", performance["cats_macro_p"]),
        ("macro R", performance["cats_macro_r"]),
        ("macro AUC", performance["cats_macro_auc"]),
    ]
    assert ner.weakest == expected_weakest(performance["ents_per_type"])
    assert textcat.weakest == expected_weakest(performance["cats_f_per_type"])
    assert textcat.weakest, "the tiny textcat's labels score differently: one is the weakest"
    for line in quality.lines():
        assert line in done.summary
    for block in ("ents_per_type", "cats_f_per_type"):
        for label, scores in performance[block].items():
            assert label_text(label, scores) in done.summary
    assert f"weakest: {textcat.weakest}" in done.summary

    card = engine.workdir(done.id) / "outputs" / CARD
    shown = [o for o in outcome.outputs if o.path == card]
    assert [(o.role, o.label, o.send_as_photo) for o in shown] == [("plot", "training card", True)]
    assert card.read_bytes().startswith(PNG)
    assert card in {Path(o.path) for o in engine.store.outputs(done.id)}
    print(f"training card: {card}")

    # /compare's picture: both jobs' curves in one PNG.
    kind = SpacyKind()
    dest = engine.workdir(done.id) / "plots" / "compared.png"
    step = kind.plot(
        engine.workdir(done.id), sys.executable, dest, compare=engine.workdir(earlier.id)
    )
    assert step is not None
    ended = await run_briefly(step.argv, step_environment(step.env), 120)
    assert ended.returncode == 0, ended.lines
    alone = dest.with_name("alone.png")
    single = kind.plot(engine.workdir(done.id), sys.executable, alone)
    assert single is not None
    assert (await run_briefly(single.argv, step_environment(single.env), 120)).returncode == 0
    assert dest.read_bytes().startswith(PNG) and dest.read_bytes() != alone.read_bytes()
    print(f"compare picture: {dest}")

    # A malformed or missing meta.json: one line, never a traceback.
    (model_best / "meta.json").write_text("{not json")
    broken = collected(engine, done)
    note = "model-best (dev): no scores: its meta.json is not valid JSON"
    assert broken.quality is not None
    assert broken.quality.models == (
        ModelScores("model-best", "dev", note="no scores: its meta.json is not valid JSON"),
    )
    assert broken.summary.count(note) == 1 and "Traceback" not in broken.summary
    (model_best / "meta.json").unlink()
    gone = collected(engine, done)
    assert "model-best (dev): no scores: model-best has no meta.json" in gone.summary


async def test_a_project_reports_its_model_best_and_fingerprints_its_assets(
    engine: Engine, wait_for_state: WaitForState, input_root: Path, spacy_corpus: SpacyCorpus
) -> None:
    corpus = copy_spacy_corpus(spacy_corpus, input_root / "corpus")
    data = fingerprint([corpus.train, corpus.dev])
    project = write_project(input_root / "project", corpus)
    done = await wait_for_state(
        engine,
        engine.submit(train_spec({"config": str(project)}, gpu="cpu")).id,
        timeout=TRAIN_TIMEOUT,
    )
    assert done.state is JobState.SUCCEEDED, done.error
    outcome = collected(engine, done)
    model_best = engine.workdir(done.id) / "work" / "project" / "training" / "model-best"
    performance = json.loads((model_best / "meta.json").read_text())["performance"]
    assert outcome.quality is not None
    assert outcome.quality.data == data, "the same data as a config job, so the same fingerprint"
    (ner,) = outcome.quality.models
    assert scores_of(ner) == [
        ("F", performance["ents_f"]),
        ("P", performance["ents_p"]),
        ("R", performance["ents_r"]),
    ]
    assert ner.line() in done.summary
    assert not (engine.workdir(done.id) / "outputs" / CARD).exists()


# ------------------------------------------------------------------------- the data's fingerprint


def planned_fingerprint(work: Path, **fields: Any) -> str:
    """The fingerprint the prepare tool writes into its plan for a request."""
    request = Request(action="train", work=str(work), outputs=str(work.parent / "out"), **fields)
    write_json(work / REQUEST, request)
    assert main(["prepare", str(work)]) == 0
    return read_plan(work).data_fingerprint


def test_the_fingerprint_follows_the_content_not_the_place(
    tmp_path: Path, spacy_corpus: SpacyCorpus
) -> None:
    import spacy
    from spacy.tokens import DocBin

    given = {"config": str(spacy_corpus.config), "gpu": "cpu"}
    here = planned_fingerprint(
        tmp_path / "a" / "work", train=str(spacy_corpus.train), dev=str(spacy_corpus.dev), **given
    )
    assert here == fingerprint([spacy_corpus.train, spacy_corpus.dev])
    moved = copy_spacy_corpus(spacy_corpus, tmp_path / "elsewhere" / "renamed")
    moved.train.rename(moved.root / "training.spacy")
    moved.dev.rename(moved.root / "valid.spacy")
    folder = planned_fingerprint(tmp_path / "b" / "work", config=str(moved.root), gpu="cpu")
    assert folder == here, "the same files in another folder, under other names"

    nlp = spacy.blank("en")
    docs = list(DocBin().from_disk(moved.root / "valid.spacy").get_docs(nlp.vocab))
    changed = DocBin(store_user_data=True)
    for index, doc in enumerate(docs):
        changed.add(nlp.make_doc(doc.text + " Indeed.") if index == 3 else doc)
    changed.to_disk(moved.root / "valid.spacy")
    other = planned_fingerprint(tmp_path / "c" / "work", config=str(moved.root), gpu="cpu")
    assert other != here


# ------------------------------------------------------------------------- meta.json's guards


def test_scores_guard_nulls_unseen_labels_and_long_label_lists() -> None:
    labels = {f"L{i:02d}": {"p": 0.5, "r": 0.5, "f": i / 20} for i in range(9)}
    meta = {
        "pipeline": ["tok2vec", "ner", "textcat_multilabel"],
        "labels": {"ner": ["GPE", "PERSON"], "textcat_multilabel": [*labels, "FOOD"]},
        "performance": {
            "ents_f": None,
            "ents_p": None,
            "ents_r": None,
            "ents_per_type": None,
            "cats_score": 0.9,
            "cats_score_desc": "macro AUC",
            "cats_macro_p": 0.4,
            "cats_macro_r": 0.6,
            "cats_macro_f": 0.45,
            "cats_macro_auc": 0.9,
            "cats_f_per_type": labels,
        },
    }
    scores = pipeline_scores(meta, {})
    assert scores.lines() == [
        "ner (dev): F — · P — · R —",
        "ner per label: none scored · not in the dev data: GPE, PERSON",
        "textcat_multilabel (dev): macro AUC 0.900 · macro P 0.400 · macro R 0.600 · "
        "macro F 0.450 · weakest: L00 (F 0.00)",
        "textcat_multilabel per label: L00 P 0.50 R 0.50 F 0.00 · L01 P 0.50 R 0.50 F 0.05 · "
        "L02 P 0.50 R 0.50 F 0.10 · L03 P 0.50 R 0.50 F 0.15 · L04 P 0.50 R 0.50 F 0.20 · "
        "L05 P 0.50 R 0.50 F 0.25 · and 3 more (in meta.json) · not in the dev data: FOOD",
    ]


def test_a_pipeline_without_known_scores_says_so_in_one_line(tmp_path: Path) -> None:
    model = tmp_path / "model-best"
    model.mkdir()
    (model / "meta.json").write_text(json.dumps({"pipeline": ["custom"], "performance": {}}))
    assert read_scores(model).lines() == [
        "model-best (dev): no scores: its meta.json holds none colabot knows"
    ]
    (model / "meta.json").write_text("[1, 2]")
    assert read_scores(model).lines() == [
        "model-best (dev): no scores: its meta.json is not a JSON object"
    ]


# ------------------------------------------------------------------------- review these


async def infer(
    engine: Engine, wait_for_state: WaitForState, model: Path, texts: Path, **params: object
) -> Job:
    """Run an inference job to its end."""
    spec = JobSpec(
        "spacy",
        Action.INFER,
        {"model": str(model), "texts": str(texts)},
        {"gpu": "cpu", **{k: str(v) for k, v in params.items()}},
    )
    done = await wait_for_state(engine, engine.submit(spec).id, timeout=TRAIN_TIMEOUT)
    assert done.state is JobState.SUCCEEDED, done.error
    return done


def review_of(engine: Engine, job: Job) -> dict[str, Any]:
    """The review list the infer tool wrote into the job's counts."""
    stats = json.loads((engine.workdir(job.id) / "work" / INFERENCE_STATS).read_text())
    review: dict[str, Any] = stats["review"]
    return review


async def test_inference_lists_the_texts_with_the_smallest_category_margin(
    engine: Engine, wait_for_state: WaitForState, tagged: SpacyCorpus, tagged_model: Path
) -> None:
    import spacy

    done = await infer(engine, wait_for_state, tagged_model, tagged.texts_txt, suggest=4)
    nlp = spacy.load(tagged_model)
    margins = []
    for number, doc in enumerate(nlp.pipe(REVIEW_TEXTS), 1):
        top, second = sorted(doc.cats.values(), reverse=True)[:2]
        margins.append((top - second, number))
    expected = [number for _, number in sorted(margins)[:4]]
    review = review_of(engine, done)
    assert review["method"] == "textcat"
    assert [item["id"] for item in review["items"]] == expected
    assert [item["confidence"] for item in review["items"]] == [
        pytest.approx(m, abs=1e-6) for m, _ in sorted(margins)[:4]
    ]
    assert "review these (4 least confident, by the margin between the two likeliest" in (
        done.summary
    )
    lines = done.summary.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("review these"))
    assert [line.split(":")[0] for line in lines[start + 1 :]] == [str(n) for n in expected]

    quiet = await infer(engine, wait_for_state, tagged_model, tagged.texts_txt, suggest=0)
    assert "review" not in quiet.summary
    stats = json.loads((engine.workdir(quiet.id) / "work" / INFERENCE_STATS).read_text())
    assert "review" not in stats

    # /compare's picture needs a training log in both jobs: an inference has none.
    dest = engine.workdir(done.id) / "plots" / "compared.png"
    step = SpacyKind().plot(
        engine.workdir(done.id), sys.executable, dest, compare=engine.workdir(quiet.id)
    )
    assert step is not None
    ended = await run_briefly(step.argv, step_environment(step.env), 120)
    assert ended.returncode == 2 and not dest.exists()
    assert ended.lines[-1] == PLOT_REFUSAL + (
        f"colabot has no training log for job #{done.id} yet (a spaCy project's own "
        "training is not followed)"
    )


async def test_a_ner_only_pipeline_is_reviewed_by_beam_probability_called_approximate(
    engine: Engine,
    wait_for_state: WaitForState,
    spacy_model: Path,
    tagged: SpacyCorpus,
    input_root: Path,
) -> None:
    import spacy

    done = await infer(engine, wait_for_state, spacy_model, tagged.texts_txt, suggest=3)
    nlp = spacy.load(spacy_model)
    ner: Any = nlp.get_pipe("ner")
    greedy = [{(e.start, e.end, e.label_) for e in doc.ents} for doc in nlp.pipe(REVIEW_TEXTS)]
    # The beam over docs the NER has not seen (research20's way), not the tool's cleared ones.
    docs = list(nlp.pipe(REVIEW_TEXTS, disable=["ner"]))
    beams = ner.beam_parse(docs, beam_width=16, beam_density=0.0001)
    sure = []
    for number, (chosen, scored) in enumerate(zip(greedy, ner.scored_ents(beams), strict=True), 1):
        spans = chosen | set(scored)
        values = [scored.get(s, 0.0) if s in chosen else 1.0 - scored[s] for s in spans]
        sure.append((min([1.0, *(min(1.0, max(0.0, v)) for v in values)]), number))
    review = review_of(engine, done)
    assert review["method"] == "ner"
    assert [item["id"] for item in review["items"]] == [n for _, n in sorted(sure)[:3]]
    assert "NER's beam-search probability of its entities (approximate: " in done.summary

    sentencizer = spacy.blank("en")
    sentencizer.add_pipe("sentencizer")
    sentencizer.to_disk(input_root / "blank")
    plain = await infer(engine, wait_for_state, input_root / "blank", tagged.texts_txt)
    assert (
        "review: confidence is not available for this pipeline (it has no textcat or ner)"
        in plain.summary.splitlines()
    )
