"""The spaCy kind through the real engine and real spaCy on the CPU, plus its pure parsers."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.workers.conftest import WaitForState
from tests.workers.kinds.conftest import SpacyCorpus
from workers.engine import Engine, EngineSettings
from workers.errors import SpecError
from workers.jobs import Action, EventType, Job, JobSpec, JobState, Progress
from workers.kinds import default_registry
from workers.kinds.spacy_progress import (
    TrainingProgress,
    best_checkpoint,
    parse_machine_line,
    parse_table_header,
    parse_table_row,
)
from workers.kinds.spacy_report import (
    explain_spacy_failure,
    inference_summary,
    main_score_keys,
    read_training_log,
    training_summary,
)
from workers.store import Store

TRAIN_TIMEOUT = 120.0
HAS_CUPY = importlib.util.find_spec("cupy") is not None


def train_spec(inputs: dict[str, str], **params: object) -> JobSpec:
    """A spaCy training spec; parameters are given as chat text would give them."""
    return JobSpec("spacy", Action.TRAIN, inputs, {k: str(v) for k, v in params.items()})


def files_spec(corpus: SpacyCorpus, **params: object) -> JobSpec:
    """Training from the config, train and dev files."""
    inputs = {"config": str(corpus.config), "train": str(corpus.train), "dev": str(corpus.dev)}
    return train_spec(inputs, **params)


def notices(engine: Engine, job_id: int) -> list[str]:
    """The texts of the notices a job posted."""
    events = engine.store.events_for(job_id)
    return [str(e.payload["text"]) for e in events if e.type is EventType.NOTICE]


def outputs(engine: Engine, job_id: int) -> dict[str, Path]:
    """The kept outputs of a finished job, by role."""
    kept = engine.store.kv_get(f"outputs:{job_id}") or []
    return {o["role"]: Path(o["path"]) for o in kept}


def succeeded_payload(engine: Engine, job_id: int) -> dict[str, Any]:
    """The payload of the job's succeeded event (summary, metrics)."""
    events = engine.store.events_for(job_id)
    return next(e.payload for e in events if e.type is EventType.SUCCEEDED)


def record_progress(engine: Engine) -> list[Progress]:
    """Collect every progress report the engine publishes."""
    seen: list[Progress] = []
    engine.on_progress(lambda _job_id, progress: seen.append(progress))
    return seen


async def finished(engine: Engine, wait_for_state: WaitForState, spec: JobSpec) -> Job:
    """Submit and wait for the job to finish."""
    job = engine.submit(spec)
    return await wait_for_state(engine, job.id, timeout=TRAIN_TIMEOUT)


@pytest.fixture
def corpus(spacy_copy: Callable[[Path], SpacyCorpus], input_root: Path) -> SpacyCorpus:
    """The test corpus inside the engine's allowed input folder."""
    return spacy_copy(input_root / "corpus")


@pytest.fixture
def engine_settings(tmp_path: Path, input_root: Path, spacy_model: Path) -> EngineSettings:
    """The usual settings, with the session's trained model also allowed as an input."""
    return EngineSettings(
        data_dir=tmp_path / "data",
        max_parallel_jobs=2,
        input_roots=(input_root, spacy_model.parent),
    )


# ----------------------------------------------------------------------------- training


async def test_trains_from_config_train_and_dev_files(
    engine: Engine, wait_for_state: WaitForState, corpus: SpacyCorpus
) -> None:
    seen = record_progress(engine)
    done = await finished(engine, wait_for_state, files_spec(corpus, max_steps=20, gpu="cpu"))
    assert done.state is JobState.SUCCEEDED, done.error
    evals = [p for p in seen if "best" in p.message]
    assert [p.step for p in evals] == [0, 10, 20]
    last = evals[-1]
    assert last.total == 20 and last.fraction == 1.0
    assert last.message.startswith("step 20 of 20 · epoch ")
    assert {"score", "best_score", "ents_f", "loss_ner"} <= set(last.metrics)
    assert any(p.eta_s is not None for p in evals[1:])
    kept = outputs(engine, done.id)
    assert kept["model"].name == "model-best" and kept["checkpoint"].name == "model-last"
    meta = json.loads((kept["model"] / "meta.json").read_text())
    payload = succeeded_payload(engine, done.id)
    assert payload["metrics"]["ents_f"] == pytest.approx(meta["performance"]["ents_f"])
    assert "model-best: ents_f " in done.summary and "(best at step " in done.summary
    assert "trained on the CPU for 20 steps" in done.summary
    assert "training on the CPU (gpu=cpu)" in notices(engine, done.id)
    log = read_training_log(kept["metrics"])
    assert [e["event"] for e in log][:2] == ["setup", "eval"] and log[-1]["event"] == "end"


async def test_trains_from_a_folder_with_overrides(
    engine: Engine, wait_for_state: WaitForState, corpus: SpacyCorpus, input_root: Path
) -> None:
    project = input_root / "ner-folder"
    (project / "configs").mkdir(parents=True)
    (project / "corpus").mkdir()
    corpus.config.rename(project / "configs" / "config.cfg")
    corpus.train.rename(project / "corpus" / "train.spacy")
    corpus.dev.rename(project / "corpus" / "dev.spacy")
    spec = train_spec({"config": str(project)}, **{"training.dropout": "0.25", "max_steps": 10})
    done = await finished(engine, wait_for_state, spec)
    assert done.state is JobState.SUCCEEDED, done.error
    model = outputs(engine, done.id)["model"]
    trained_with = (model / "config.cfg").read_text()
    assert "dropout = 0.25" in trained_with and "max_steps = 10" in trained_with
    assert str(project / "corpus" / "train.spacy") in trained_with


async def test_trains_from_a_zip_and_packages_a_wheel(
    engine: Engine, wait_for_state: WaitForState, corpus: SpacyCorpus, input_root: Path
) -> None:
    archive = input_root / "ner.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(corpus.config, "ner/config.cfg")
        bundle.write(corpus.train, "ner/train.spacy")
        bundle.write(corpus.dev, "ner/dev.spacy")
    spec = train_spec({"config": str(archive)}, max_steps=10, package="yes")
    done = await finished(engine, wait_for_state, spec)
    assert done.state is JobState.SUCCEEDED, done.error
    wheel = outputs(engine, done.id)["package"]
    assert wheel.suffix == ".whl" and wheel.name.startswith(f"en_colabot_job{done.id}-")
    with zipfile.ZipFile(wheel) as built:
        assert any(name.endswith("meta.json") for name in built.namelist())
    assert f"wheel: {wheel.name}" in done.summary
    shared = input_root / wheel.name
    shared.write_bytes(wheel.read_bytes())
    inputs = {"model": str(shared), "texts": str(corpus.texts_txt)}
    tagged = await finished(engine, wait_for_state, JobSpec("spacy", Action.INFER, inputs))
    assert tagged.state is JobState.SUCCEEDED, tagged.error


async def test_resume_trains_on_from_the_saved_weights(
    engine_settings: EngineSettings, wait_for_state: WaitForState, corpus: SpacyCorpus
) -> None:
    first = Engine(engine_settings, Store(engine_settings.data_dir), default_registry())
    learned = asyncio.Event()
    first.on_progress(
        lambda _id, p: learned.set() if p.metrics.get("best_score", 0) > 0.5 else None
    )
    await first.start()
    job = first.submit(files_spec(corpus, max_steps=5000, eval_frequency=5))
    await asyncio.wait_for(learned.wait(), TRAIN_TIMEOUT)
    await first.stop()
    assert first.job(job.id).state is JobState.INTERRUPTED

    second = Engine(engine_settings, Store(engine_settings.data_dir), default_registry())
    evaluated = asyncio.Event()
    second.on_progress(lambda _id, p: evaluated.set() if "best" in p.message else None)
    await second.start()
    try:
        assert second.resume(job.id).attempt == 2
        await asyncio.wait_for(evaluated.wait(), TRAIN_TIMEOUT)
        await second.cancel(job.id)
    finally:
        await second.stop()
    log = (second.workdir(job.id) / "outputs" / "training-log.jsonl").read_text().splitlines()
    runs = [json.loads(line) for line in log]
    first_evals = [e["score"] for e in runs if e["event"] == "eval" and e["step"] == 0]
    assert len(first_evals) == 2
    scratch, resumed = first_evals
    assert resumed > scratch + 0.4
    assert any("spaCy cannot keep the optimizer state" in n for n in notices(second, job.id))


async def test_the_example_trains_and_tries_the_model(
    engine: Engine, wait_for_state: WaitForState
) -> None:
    done = await finished(engine, wait_for_state, train_spec({"config": "example"}))
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.spec.params["example"] is True and "config" not in done.spec.inputs
    kept = outputs(engine, done.id)
    assert {"model", "checkpoint", "metrics", "predictions"} <= set(kept)
    rows = [json.loads(line) for line in kept["predictions"].read_text().splitlines()]
    assert len(rows) == 5 and all(row["entities"] and row["cats"] for row in rows)
    assert "ents_f" in done.summary and "cats_score" in done.summary
    assert "spaCy inference: 5 docs" in done.summary and "sample:" in done.summary
    assert any(n.startswith("example: 200 steps") for n in notices(engine, done.id))


# --------------------------------------------------------------------------- inference


@pytest.mark.parametrize(
    ("texts", "ids"),
    [
        ("texts_txt", [1, 2, 3]),
        ("texts_jsonl", ["doc-0", "doc-1", "doc-2"]),
        ("texts_spacy", [0, 1, 2]),
    ],
)
async def test_inference_keeps_the_input_ids(
    engine: Engine,
    wait_for_state: WaitForState,
    corpus: SpacyCorpus,
    spacy_model: Path,
    texts: str,
    ids: list[object],
) -> None:
    seen = record_progress(engine)
    inputs = {"model": str(spacy_model), "texts": str(getattr(corpus, texts))}
    spec = JobSpec("spacy", Action.INFER, inputs, {"gpu": "cpu"})
    done = await finished(engine, wait_for_state, spec)
    assert done.state is JobState.SUCCEEDED, done.error
    rows = [json.loads(line) for line in outputs(engine, done.id)["predictions"].open()]
    assert [row["id"] for row in rows] == ids
    assert rows[0]["text"] == "Grace Lee loved the trip to Oslo last year."
    assert {"entities", "cats"} <= set(rows[0])
    assert done.summary.startswith("spaCy inference: 3 docs → predictions.jsonl")
    assert "sample:" in done.summary and "Grace Lee loved" in done.summary
    assert any(p.message == "docs 3 of 3" for p in seen)
    assert "inference runs on the CPU (gpu=cpu)" in notices(engine, done.id)


async def test_inference_from_a_zipped_model(
    engine: Engine,
    wait_for_state: WaitForState,
    corpus: SpacyCorpus,
    spacy_model: Path,
    input_root: Path,
) -> None:
    archive = input_root / "model.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in spacy_model.rglob("*"):
            bundle.write(path, Path("model-best") / path.relative_to(spacy_model))
    inputs = {"model": str(archive), "texts": str(corpus.texts_txt)}
    done = await finished(engine, wait_for_state, JobSpec("spacy", Action.INFER, inputs))
    assert done.state is JobState.SUCCEEDED, done.error


# ---------------------------------------------------------------------------- projects

PROJECT_YML = """\
title: "tiny NER"
vars:
  gpu_id: -1
  steps: 10
assets:
  - dest: "corpus/train.spacy"
    checksum: "{train_md5}"
  - dest: "corpus/dev.spacy"
commands:
  - name: "train"
    script:
      - >-
        python -m spacy train configs/config.cfg --output training/
        --paths.train corpus/train.spacy --paths.dev corpus/dev.spacy
        --gpu-id ${{vars.gpu_id}} --training.max_steps ${{vars.steps}}
        --training.eval_frequency 5
    deps: ["configs/config.cfg", "corpus/train.spacy", "corpus/dev.spacy"]
    outputs: ["training/model-best"]
  - name: "report"
    script:
      - "python scripts/report.py training/model-best metrics/scores.json"
    deps: ["training/model-best"]
    outputs: ["metrics/scores.json"]
workflows:
  all: ["train", "report"]
"""

REPORT_PY = """\
import json, pathlib, sys
meta = json.loads((pathlib.Path(sys.argv[1]) / "meta.json").read_text())
out = pathlib.Path(sys.argv[2])
out.parent.mkdir(exist_ok=True)
out.write_text(json.dumps(meta["performance"]))
"""


def write_project(folder: Path, corpus: SpacyCorpus, extra_assets: str = "") -> Path:
    """A tiny weasel project that trains the corpus and reports the scores."""
    for name in ("configs", "corpus", "scripts"):
        (folder / name).mkdir(parents=True)
    corpus.config.rename(folder / "configs" / "config.cfg")
    corpus.train.rename(folder / "corpus" / "train.spacy")
    corpus.dev.rename(folder / "corpus" / "dev.spacy")
    (folder / "scripts" / "report.py").write_text(REPORT_PY)
    data = (folder / "corpus" / "train.spacy").read_bytes()
    text = PROJECT_YML.format(train_md5=hashlib.md5(data, usedforsecurity=False).hexdigest())
    text = text.replace("commands:\n", extra_assets + "commands:\n")
    (folder / "project.yml").write_text(text)
    return folder


async def test_a_spacy_project_runs_its_workflow(
    engine: Engine, wait_for_state: WaitForState, corpus: SpacyCorpus, input_root: Path
) -> None:
    project = write_project(input_root / "project", corpus)
    seen = record_progress(engine)
    spec = train_spec({"config": str(project)}, gpu="cpu")
    done = await finished(engine, wait_for_state, spec)
    assert done.state is JobState.SUCCEEDED, done.error
    said = notices(engine, done.id)
    assert any(n.startswith("running the project's all (the default") for n in said)
    assert any("vars.gpu_id=-1" in n for n in said)
    messages = [p.message for p in seen]
    assert any(m.startswith("command train (1 of 2): ") for m in messages)
    assert any("best" in m and m.endswith("command train (1 of 2)") for m in messages)
    kept = outputs(engine, done.id)
    assert kept["model"].name == "model-best" and kept["output"].name == "scores.json"
    assert not (project / "training").exists(), "the project ran in a copy, not in place"
    assert done.summary.startswith("spaCy project: ran all (train, report).")
    assert "training/model-best: ents_f" in done.summary


async def test_a_project_with_a_missing_url_asset_fails_before_running(
    engine: Engine, wait_for_state: WaitForState, corpus: SpacyCorpus, input_root: Path
) -> None:
    asset = '  - dest: "assets/vectors.zip"\n    url: "https://example.org/vectors.zip"\n'
    project = write_project(input_root / "project", corpus, extra_assets=asset)
    done = await finished(engine, wait_for_state, train_spec({"config": str(project)}))
    assert done.state is JobState.FAILED
    assert "assets/vectors.zip is missing" in (done.error or "")
    assert "https://example.org/vectors.zip" in (done.error or "")
    failed = next(e for e in engine.store.events_for(done.id) if e.type is EventType.FAILED)
    assert failed.payload["step"] == "prepare"
    assert "project command" not in engine.log_path(done.id).read_text()
    assert not (engine.workdir(done.id) / "work" / "project").exists()


# --------------------------------------------------------------------------- bad input


def write_bad_input(case: str, corpus: SpacyCorpus, root: Path) -> JobSpec:
    """A training spec with one thing wrong with it."""
    if case == "config":
        corpus.config.write_text("this is [not a config\n%%garbage = = =\n")
    elif case == "docbin":
        corpus.train.write_text("hello world, not a DocBin\n")
    elif case == "zip-slip":
        archive = root / "evil.zip"
        with zipfile.ZipFile(archive, "w") as bundle:
            bundle.writestr("config.cfg", corpus.config.read_text())
            bundle.writestr("../../escaped.txt", "gotcha")
        return train_spec({"config": str(archive)})
    elif case == "override":
        return files_spec(corpus, **{"training.dropuot": "0.3"})
    elif case == "section":
        return files_spec(corpus, **{"trainin.dropout": "0.3"})
    elif case == "gpu":
        return files_spec(corpus, gpu=0)
    elif case == "no-data":
        (root / "lonely").mkdir()
        (root / "lonely" / "config.cfg").write_text(corpus.config.read_text())
        return train_spec({"config": str(root / "lonely")})
    return files_spec(corpus)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("config", "the config config.cfg does not parse: File contains no section headers."),
        ("docbin", "the train data train.spacy is not a spaCy DocBin (.spacy) file"),
        ("zip-slip", "points outside the archive folder"),
        (
            "override",
            "unknown config key training.dropuot: [training] has no setting 'dropuot' "
            "(did you mean training.dropout?)",
        ),
        ("section", "unknown config key trainin.dropout: no [trainin] section"),
        pytest.param(
            "gpu",
            'gpu=0 asks for a GPU, but CuPy is not installed (for the GPU: pip install "spacy',
            marks=pytest.mark.skipif(HAS_CUPY, reason="CuPy is installed here"),
        ),
        ("no-data", "no train data in lonely: give train=<.spacy> or add train.spacy to it"),
    ],
)
async def test_bad_input_is_refused_before_training(
    engine: Engine,
    wait_for_state: WaitForState,
    corpus: SpacyCorpus,
    input_root: Path,
    case: str,
    reason: str,
) -> None:
    done = await finished(engine, wait_for_state, write_bad_input(case, corpus, input_root))
    assert done.state is JobState.FAILED
    assert reason in (done.error or "")
    log = engine.log_path(done.id).read_text()
    assert "=== colabot step: prepare ===" in log and "colabot step: train" not in log
    assert not (input_root.parent / "escaped.txt").exists()


async def test_a_training_failure_is_explained(
    engine: Engine, wait_for_state: WaitForState, corpus: SpacyCorpus
) -> None:
    text = corpus.config.read_text().replace(
        "spacy.TransitionBasedParser.v2", "spacy.TransitionBasedParser.v9"
    )
    corpus.config.write_text(text)
    done = await finished(engine, wait_for_state, files_spec(corpus))
    assert done.state is JobState.FAILED
    assert done.error == (
        "the config uses spacy.TransitionBasedParser.v9 (a registered architectures function) "
        "that is not installed; a plugin package such as spacy-transformers may be missing"
    )


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


# ------------------------------------------------------------------------- pure parsing

SETUP = (
    'COLABOT_SPACY {"event": "setup", "pipeline": ["tok2vec", "ner"], "max_steps": 40, '
    '"max_epochs": 0, "eval_frequency": 10, "score_weights": {"ents_f": 1.0, "ents_p": 0.0}}'
)


def eval_line(step: int, score: float, best: float, best_step: int) -> str:
    """A logger eval line."""
    event = {
        "event": "eval",
        "step": step,
        "epoch": step // 10,
        "score": score,
        "best_score": best,
        "best_step": best_step,
        "losses": {"tok2vec": 1.5, "ner": 30.0},
        "scores": {"ents_f": score, "ents_p": 0.5, "token_acc": 1.0, "speed": 9000.0},
    }
    return "COLABOT_SPACY " + json.dumps(event)


def test_logger_lines_become_progress_with_best_score_and_eta() -> None:
    parser = TrainingProgress()
    assert parser.parse("output", "Using CPU") is None
    started = parser.parse("output", SETUP)
    assert started is not None and started.message == "training: step 0 of 40"
    parser.parse("output", eval_line(0, 0.0, 0.0, 0))
    progress = parser.parse("output", eval_line(20, 0.8, 0.9, 10))
    assert progress is not None
    assert progress.step == 20 and progress.total == 40 and progress.fraction == 0.5
    assert progress.message == "step 20 of 40 · epoch 2 · score 0.800 · best 0.900 at step 10"
    assert progress.metrics == {
        "score": 0.8,
        "best_score": 0.9,
        "ents_f": 0.8,
        "ents_p": 0.5,
        "loss_tok2vec": 1.5,
        "loss_ner": 30.0,
    }
    assert progress.eta_s is not None


def test_once_the_logger_speaks_the_table_is_ignored() -> None:
    parser = TrainingProgress()
    parser.parse("output", SETUP)
    header = "E    #       LOSS TOK2VEC  LOSS NER  ENTS_F  ENTS_P  SCORE "
    assert parser.parse("output", header) is None
    assert (
        parser.parse("output", "  0       0          0.00     59.40    0.00    0.00    0.00")
        is None
    )


def test_the_console_table_is_the_fallback() -> None:
    parser = TrainingProgress(note="command train (1 of 2)")
    header = "\x1b[1mE    #       LOSS TOK2VEC  LOSS NER  ENTS_F  ENTS_P  ENTS_R  SCORE \x1b[0m"
    assert parser.parse("output", header) is None
    parser.parse("output", "  0       0          0.00     59.40    0.00    0.00    0.00    0.00")
    progress = parser.parse(
        "output", "  5      20          5.63    245.62  100.00  100.00  100.00    1.00"
    )
    assert progress is not None and progress.step == 20 and progress.total is None
    assert progress.metrics["ents_f"] == 1.0 and progress.metrics["loss_ner"] == 245.62
    assert progress.metrics["best_score"] == 1.0
    assert progress.message == (
        "step 20 · epoch 5 · score 1.000 · best 1.000 at step 20 · command train (1 of 2)"
    )


def test_table_rows_need_a_header_and_the_right_width() -> None:
    columns = parse_table_header("E    #       LOSS NER  ENTS_F  SCORE ")
    assert columns == ["E", "#", "LOSS NER", "ENTS_F", "SCORE"]
    assert parse_table_header("---  ------  --------") is None
    assert parse_table_row("  1   5   2.00  50.00  0.50", columns) == {
        "epoch": 1.0,
        "step": 5.0,
        "loss_ner": 2.0,
        "ents_f": 0.5,
        "score": 0.5,
    }
    assert parse_table_row("  1   5   2.00  50.00", columns) is None
    assert parse_table_row("Saved pipeline", columns) is None


def test_machine_lines() -> None:
    assert parse_machine_line('COLABOT_SPACY {"event": "docs", "done": 1}') == {
        "event": "docs",
        "done": 1,
    }
    assert parse_machine_line("COLABOT_SPACY {broken") is None
    assert parse_machine_line('COLABOT_SPACY {"no": "event"}') is None
    assert parse_machine_line('progress {"event": "x"}') is None


def test_best_checkpoint_is_the_latest_top_score() -> None:
    assert best_checkpoint([]) is None
    assert best_checkpoint([(0.1, 0), (0.9, 10), (0.5, 20), (0.9, 30)]) == (0.9, 30)


def test_epoch_based_training_counts_epochs() -> None:
    parser = TrainingProgress()
    parser.parse(
        "output",
        SETUP.replace('"max_steps": 40', '"max_steps": 0').replace(
            '"max_epochs": 0', '"max_epochs": 4'
        ),
    )
    progress = parser.parse("output", eval_line(20, 0.5, 0.5, 20))
    assert progress is not None and progress.message.startswith("epoch 2 of 4 · step 20")


TAILS = {
    "wheel": [
        "Generating wheels requires 'build' or 'wheel' (deprecated) to be installed",
        "pip install build",
    ],
    "cupy": ["Traceback ...", "ValueError: Cannot use GPU, CuPy is not installed"],
    "oom": ["cupy.cuda.memory.OutOfMemoryError: Out of memory allocating 1,024 bytes"],
    "garbage": [
        "✘ Config validation error",
        "Make sure the sections and values are formatted correctly.",
        "",
        "File contains no section headers.",
        "file: '<string>', line: 1",
        "'this is [not a config\\n'",
    ],
    "ref": [
        "✘ Config validation error",
        "corpora -> trian\tnot a valid section reference: corpora.trian",
        "{'paths': {'train': 'data/train.spacy'}}",
    ],
    "value": [
        "Config validation error",
        "max_steps\tInput should be a valid integer",
        "{'optimizer': <thinc.optimizers.Optimizer object at 0x7f8e4b805d00>}",
    ],
    "section": [
        "✘ Error parsing config overrides",
        "trainin -> max_steps\tnot a section value that can be overridden",
    ],
    "docbin": [
        "ValueError: [E1014] Error loading DocBin data. It doesn't look like the data is in "
        "DocBin (.spacy) format."
    ],
    "missing": ["FileNotFoundError: [Errno 2] No such file or directory: 'corpus/nope.spacy'"],
    "empty": ["AssertionError: [E923] It looks like there is no proper sample data"],
    "vectors": [
        "OSError: [E884] The pipeline could not be initialized because the vectors could not "
        "be found at 'en_core_web_lg'. If your pipeline..."
    ],
    "weasel": ["✘ Missing dependency specified by command 'train': corpus/train.spacy"],
    "prepare": ["colabot-spacy: error: the config c.cfg does not parse: oops"],
    "other": ["Traceback (most recent call last):", "KeyError: 'ner'", "", "done"],
    "unknown": ["exited"],
    "no-spacy": ["ModuleNotFoundError: No module named 'spacy'"],
}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("cupy", 'a GPU was asked for, but CuPy is not installed: pip install "spacy[cuda12x]"'),
        ("oom", "the GPU ran out of memory"),
        ("garbage", "the config is not valid: File contains no section headers."),
        (
            "ref",
            "the config refers to a section it does not have: corpora -> trian: not a valid "
            "section reference: corpora.trian",
        ),
        ("value", "the config is not valid: max_steps: Input should be a valid integer"),
        (
            "section",
            "a config override names a section the config does not have: trainin -> "
            "max_steps: not a section value that can be overridden",
        ),
        ("docbin", "a .spacy file is not in spaCy's DocBin format"),
        ("missing", "a file is missing: corpus/nope.spacy"),
        ("empty", "there are no usable training examples"),
        ("vectors", "the config needs the word vectors en_core_web_lg"),
        ("weasel", "project command train needs corpus/train.spacy, which does not exist"),
        ("prepare", "the config c.cfg does not parse: oops"),
        ("other", "KeyError: 'ner'"),
        ("no-spacy", "spaCy is not installed where jobs run (spacy is missing)"),
        ("wheel", "package=yes builds a wheel, which needs the 'wheel' package"),
    ],
)
def test_failures_are_named_from_the_last_lines(case: str, expected: str) -> None:
    reason = explain_spacy_failure(TAILS[case])
    assert reason is not None and reason.startswith(expected)


def test_unknown_failures_are_left_to_the_engine() -> None:
    assert explain_spacy_failure(TAILS["unknown"]) is None


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
