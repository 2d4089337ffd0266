"""The measurement the cluster benchmarks share: the same tiny spaCy training through the
engine with the ``local`` executor and with a cluster executor, in interleaved rounds (the
order alternates each round), timing submit → the first line the step itself printed into
the job's log, and submit → SUCCEEDED.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from bench.spacy_overhead import write_bench_corpus
from workers.engine import Engine, EngineSettings
from workers.executors.base import Executor
from workers.executors.local import LocalExecutor
from workers.jobs import Action, JobSpec, JobState
from workers.kinds.registry import default_registry
from workers.store.database import Store

# The first line the spaCy steps themselves print (colabot's header lines, and a cluster's,
# come before it).
FIRST_OUTPUT = b"COLABOT_SPACY"


@dataclass
class Run:
    """One job's two figures, in seconds from submit."""

    first_line: float
    finished: float


async def run_job(engine: Engine, spec: JobSpec) -> Run:
    """Submit ``spec`` and time its first output line and its end."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[JobState] = loop.create_future()
    started = time.perf_counter()
    job = engine.submit(spec)
    engine.on_state(
        lambda j: (
            done.set_result(j.state) if j.id == job.id and j.finished and not done.done() else None
        )
    )
    log = engine.log_path(job.id)
    first_line = 0.0
    while not done.done():
        if not first_line and log.exists() and FIRST_OUTPUT in log.read_bytes()[:65536]:
            first_line = time.perf_counter() - started
        await asyncio.sleep(0.005)
    finished = time.perf_counter() - started
    state = done.result()
    if state is not JobState.SUCCEEDED:
        raise RuntimeError(f"job {job.id} ended {state.value}: {engine.job(job.id).error}")
    return Run(first_line or finished, finished)


async def start_engine(data_dir: Path, executor: Executor, inputs: Path) -> Engine:
    """A started engine on ``data_dir`` whose steps go to ``executor``."""
    settings = EngineSettings(data_dir=data_dir, input_roots=(inputs,))
    engine = Engine(settings, Store(data_dir), default_registry(), executor=executor)
    await engine.start()
    return engine


async def measure(
    rounds: int, steps: int, home: Path, name: str, cluster: Executor
) -> dict[str, list[Run]]:
    """Run the rounds on this machine and on ``cluster``; return each one's runs."""
    files = write_bench_corpus(home / "corpus", steps)
    inputs = {slot: str(path) for slot, path in files.items()}
    spec = JobSpec("spacy", Action.TRAIN, inputs, {"gpu": "cpu"})
    engines = {
        "local": await start_engine(home / "local", LocalExecutor(), home / "corpus"),
        name: await start_engine(home / name, cluster, home / "corpus"),
    }
    runs: dict[str, list[Run]] = {key: [] for key in engines}
    try:
        for engine in engines.values():  # warm-up: caches, bytecode, the cluster's agents
            await run_job(engine, spec)
        for index in range(rounds):
            order = list(engines) if index % 2 == 0 else list(reversed(engines))
            for key in order:
                runs[key].append(await run_job(engines[key], spec))
                print(f"round {index + 1} {key:<6} {runs[key][-1].finished:6.2f} s", flush=True)
    finally:
        for engine in engines.values():
            await engine.stop()
            engine.store.close()
    return runs


def report(runs: dict[str, list[Run]], name: str, steps: int, target: float | None) -> None:
    """Print the medians and the wall-time ratio."""
    rounds = len(runs["local"])
    print(f"{name} overhead: blank English NER, {steps} steps, CPU, {rounds} rounds, one machine")
    medians: dict[str, float] = {}
    for key in ("local", name):
        first = statistics.median(r.first_line for r in runs[key])
        medians[key] = statistics.median(r.finished for r in runs[key])
        walls = " ".join(f"{r.finished:5.2f}" for r in runs[key])
        print(
            f"{key + ' executor':<15} submit → first output line median {first:5.2f} s   "
            f"submit → finished median {medians[key]:6.2f} s   runs: {walls}"
        )
    ratio = medians[name] / medians["local"]
    goal = f"  (target ≤ {target:.2f})" if target is not None else ""
    print(f"wall-time ratio {name} / local {ratio:.3f}{goal}")
    print(f"added per job {medians[name] - medians['local']:.2f} s (two steps: prepare, train)")
