"""spaCy jobs through the engine: real training, inference and projects on tiny data."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import importlib.util
import json
import zipfile
from pathlib import Path

import pytest

from tests.helpers.engine import WaitForState, notices
from tests.helpers.spacy_data import SpacyCorpus, copy_spacy_corpus
from tests.helpers.wandb_files import wandb_history
from tests.workers.kinds.helpers import train_spec
from workers.engine import Engine, EngineSettings
from workers.events import Failed, Succeeded
from workers.jobs import Action, Job, JobSpec, JobState, Progress
from workers.kinds.registry import default_registry
from workers.kinds.spacy.report import (
    read_training_log,
)
from workers.store.database import Store
from workers.wandb.runs import WandbSettings, offline_runs

TRAIN_TIMEOUT = 120.0


HAS_CUPY = importlib.util.find_spec("cupy") is not None


def files_spec(corpus: SpacyCorpus, **params: object) -> JobSpec:
    """Training from the config, train and dev files."""
    inputs = {"config": str(corpus.config), "train": str(corpus.train), "dev": str(corpus.dev)}
    return train_spec(inputs, **params)


def outputs(engine: Engine, job_id: int) -> dict[str, Path]:
    """The kept outputs of a finished job, by role."""
    return {o.role: Path(o.path) for o in engine.store.outputs(job_id)}


def succeeded_payload(engine: Engine, job_id: int) -> Succeeded:
    """The job's succeeded event (summary, metrics)."""
    events = engine.store.events_for(job_id)
    return next(e.payload for e in events if isinstance(e.payload, Succeeded))


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
def corpus(spacy_corpus: SpacyCorpus, input_root: Path) -> SpacyCorpus:
    """The test corpus inside the engine's allowed input folder."""
    return copy_spacy_corpus(spacy_corpus, input_root / "corpus")


@pytest.fixture
def engine_settings(tmp_path: Path, input_root: Path, spacy_model: Path) -> EngineSettings:
    """The usual settings, with the session's trained model also allowed as an input."""
    return EngineSettings(
        data_dir=tmp_path / "data",
        max_parallel_jobs=2,
        input_roots=(input_root, spacy_model.parent),
    )


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
    assert payload.metrics["ents_f"] == pytest.approx(meta["performance"]["ents_f"])
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
    failed = next(
        e.payload for e in engine.store.events_for(done.id) if isinstance(e.payload, Failed)
    )
    assert failed.step == "prepare"
    assert "project command" not in engine.log_path(done.id).read_text()
    assert not (engine.workdir(done.id) / "work" / "project").exists()


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


async def test_stop_early_ends_training_at_an_evaluation_and_keeps_both_models(
    engine: Engine, wait_for_state: WaitForState, corpus: SpacyCorpus
) -> None:
    seen = record_progress(engine)
    job = engine.submit(files_spec(corpus, max_steps=100000, eval_frequency=10, gpu="cpu"))
    evaluated = asyncio.Event()
    engine.on_progress(lambda _id, p: evaluated.set() if (p.step or 0) >= 10 else None)
    await asyncio.wait_for(evaluated.wait(), timeout=TRAIN_TIMEOUT)
    step = engine.stop_early(job.id)
    assert step.name == "train" and "next evaluation" in step.stops_when
    done = await wait_for_state(engine, job.id, timeout=TRAIN_TIMEOUT)
    assert done.state is JobState.SUCCEEDED, done.error
    assert "stopped early at step " in done.summary
    stopped_at = int(done.summary.split("stopped early at step ")[1].split()[0])
    assert 10 <= stopped_at < 100000 and stopped_at % 10 == 0
    kept = outputs(engine, done.id)
    assert (kept["model"] / "meta.json").is_file()
    assert (kept["checkpoint"] / "meta.json").is_file()
    assert max(p.step or 0 for p in seen) <= stopped_at
    log = read_training_log(kept["metrics"])
    assert [e["event"] for e in log[-3:]] == ["eval", "stopped_early", "end"]
    assert log[-3]["step"] == log[-2]["step"] == stopped_at


FAKE_WANDB_KEY = "0123456789abcdef0123456789abcdef01234567"


async def test_a_wandb_run_offline_holds_the_losses_and_is_kept_with_the_results(
    engine_settings: EngineSettings,
    store: Store,
    wait_for_state: WaitForState,
    corpus: SpacyCorpus,
) -> None:
    settings = dataclasses.replace(
        engine_settings, wandb=WandbSettings(api_key=FAKE_WANDB_KEY, mode="offline")
    )
    engine = Engine(settings, store, default_registry())
    await engine.start()
    try:
        done = await finished(engine, wait_for_state, files_spec(corpus, max_steps=20, wandb="yes"))
    finally:
        await engine.stop()
    assert done.state is JobState.SUCCEEDED, done.error
    kept = outputs(engine, done.id)
    (run,) = offline_runs(kept["wandb"])
    evals = [e for e in read_training_log(kept["metrics"]) if e["event"] == "eval"]
    logged = [e["losses"]["ner"] for e in evals]
    history = [row["loss_ner"] for row in wandb_history(run) if "loss_ner" in row]
    assert history == pytest.approx(logged) and len(history) == 3
    assert "wandb sync wandb/offline-run-" in done.summary
    log = (engine.workdir(done.id) / "job.log").read_text()
    assert FAKE_WANDB_KEY not in log and "spacy.ChainLogger.v1" in log
    for path in run.rglob("*"):
        if path.is_file():
            assert FAKE_WANDB_KEY.encode() not in path.read_bytes(), path
