"""A sent file never runs code from its own folder.

Steps run ``python -m ...`` with their working folder inside the unpacked input, and
``python -c``/``-m`` would import a ``workers/``, ``sleap_nn/``, ``spacy/`` or ``torch.py``
found there before the real one. Here a SLEAP training package and a spaCy config folder
hold such modules beside their real files (each writes a marker if it is ever imported), and
train through the real engine; /plot and ``colabot check``'s W&B probe start in a planted
folder; a spaCy project's own commands still find the modules beside their scripts while
weasel and colabot come from their own places. No marker may appear.
(The same plants do run under colabot's own environment: tests/workers/safety.)
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.helpers.cli import cli_command, colabot_env
from tests.helpers.engine import WaitForState, notices
from tests.helpers.spacy_data import SpacyCorpus, copy_spacy_corpus
from tests.hostile.plants import plant, planted_zip, ran
from tests.loopback.wandb_server import WandbServer
from workers.engine import Engine
from workers.jobs import Action, Job, JobSpec, JobState
from workers.kinds.spacy.plan import PLAN_FILE

pytestmark = pytest.mark.timeout(900)

TRAIN_TIMEOUT = 400.0


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    """Where a planted module, once imported, leaves its marker."""
    folder = tmp_path / "marks"
    folder.mkdir()
    return folder


async def finished(engine: Engine, wait_for_state: WaitForState, spec: JobSpec, marks: Path) -> Job:
    """Run the job; no planted module ran, and it succeeded."""
    job = engine.submit(spec)
    done = await wait_for_state(engine, job.id, timeout=TRAIN_TIMEOUT)
    assert ran(marks) == []
    tail = "\n".join(engine.log_tail(job.id, 30))
    assert done.state is JobState.SUCCEEDED, f"{done.error}\n{tail}"
    return done


async def test_a_planted_sleap_package_trains_predicts_and_plots_without_running_them(
    engine: Engine,
    wait_for_state: WaitForState,
    sleap_data: dict[str, Path],
    input_root: Path,
    marks: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    package = planted_zip(
        sleap_data["package14"], input_root / "planted.slp.training_job.zip", marks
    )
    params = {"epochs": "1", "steps_per_epoch": "1", "batch": "4", "infer": "yes"}
    spec = JobSpec("sleap", Action.TRAIN, {"input": str(package)}, dict(params))
    job = await finished(engine, wait_for_state, spec, marks)
    # The package's own steps ran where the plants are: training and its inference job.
    work = engine.workdir(job.id) / "work" / "package"
    assert (work / "torch.py").is_file() and (work / "workers" / "__init__.py").is_file()
    log = engine.log_path(job.id).read_text()
    assert "=== colabot step: train single_instance ===" in log
    assert "=== colabot step: predict " in log
    assert ran(marks) == []
    # /plot, started from a folder holding the same plants.
    monkeypatch.chdir(plant(tmp_path / "plot-cwd", marks))
    picture = await engine.plot(job.id)
    assert picture.is_file() and picture.read_bytes()[:4] == b"\x89PNG"
    assert ran(marks) == []


async def test_a_planted_spacy_config_folder_trains_without_running_them(
    engine: Engine,
    wait_for_state: WaitForState,
    spacy_corpus: SpacyCorpus,
    input_root: Path,
    marks: Path,
) -> None:
    corpus = copy_spacy_corpus(spacy_corpus, plant(input_root / "ner", marks))
    spec = JobSpec(
        "spacy", Action.TRAIN, {"config": str(corpus.root)}, {"max_steps": "10", "gpu": "cpu"}
    )
    job = await finished(engine, wait_for_state, spec, marks)
    # It trained where the plants are (spaCy reads a config's relative paths from there).
    log = engine.log_path(job.id).read_text()
    assert "=== colabot step: train ===" in log
    plan = json.loads((engine.workdir(job.id) / "work" / PLAN_FILE).read_text())
    assert plan["cwd"] == str(corpus.root)
    assert {o.role for o in engine.store.outputs(job.id)} >= {"model", "checkpoint"}


PROJECT_YML = """\
title: "A project whose script imports the module beside it"
commands:
  - name: "report"
    script:
      - "python scripts/report.py results/report.txt"
    outputs: ["results/report.txt"]
workflows:
  all: ["report"]
"""

REPORT_PY = """\
import sys
import helper  # beside this script: Python puts a script's folder first on sys.path
helper.write(sys.argv[1])
"""

HELPER_PY = """\
import pathlib, sys
def write(path):
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"helper ran; safe path {sys.flags.safe_path}")
"""


async def test_a_spacy_projects_commands_run_as_documented_but_weasel_is_never_shadowed(
    engine: Engine, wait_for_state: WaitForState, input_root: Path, marks: Path
) -> None:
    project = plant(input_root / "project", marks)
    (project / "scripts").mkdir()
    (project / "scripts" / "report.py").write_text(REPORT_PY)
    (project / "scripts" / "helper.py").write_text(HELPER_PY)
    (project / "project.yml").write_text(PROJECT_YML)
    spec = JobSpec("spacy", Action.TRAIN, {"config": str(project)}, {"gpu": "cpu"})
    job = await finished(engine, wait_for_state, spec, marks)
    report = engine.workdir(job.id) / "work" / "project" / "results" / "report.txt"
    assert report.read_text() == "helper ran; safe path False"
    said = notices(engine, job.id)
    assert any("running the project's all" in text for text in said)


async def test_colabot_checks_wandb_probe_started_in_a_planted_folder_runs_none_of_it(
    tmp_path: Path, marks: Path, wandb_server: WandbServer
) -> None:
    key = "fedcba9876543210fedcba9876543210fedcba98"
    env = colabot_env(
        worker_data_dir=str(tmp_path / "data"),
        results_dir=str(tmp_path / "results"),
        wandb_api_key=key,
        wandb_base_url=wandb_server.base,
    )
    process = await asyncio.create_subprocess_exec(
        *cli_command("check"),
        env=env,
        cwd=plant(tmp_path / "cwd", marks),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    text = out.decode()
    assert f"problem: W&B: {wandb_server.base} refused the key (" in text, text
    assert wandb_server.seen_keys == [key]  # the probe ran, and asked W&B
    assert ran(marks) == []
