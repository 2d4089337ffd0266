"""The SLEAP kind's ``prepare`` step on its own: the first thing every SLEAP job runs.

Writes tiny synthetic SLEAP data (the kind's own ``make-data``) and, for each case, a fresh
job folder with a ``request.json`` as the kind writes it, then runs the real step
(``python -m workers.kinds.sleap.tools prepare <work>``, the kind's step environment) N times
and prints the median, p90 and max wall time. Cases: (a) ``/train sleap example`` and (b) a
labels file with a person's config and a few dotted overrides. The first run of each case
starts with an empty tools cache (its own folder, through ``XDG_CACHE_HOME``) and is shown
apart as ``cold``; the others find what it left. Target: medians under 2 s.

``--importtime`` also runs each case once under ``python -X importtime`` and prints the
imports that took longest (cumulative), and whether torch was imported.

    python -m bench.sleap_prepare [--runs 7] [--importtime]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import workers
from workers.jobs import Action, JobSpec
from workers.kinds.plans import REQUEST, write_json
from workers.kinds.sleap.kind import STEP_ENV, TOOLS_MODULE, SleapKind
from workers.kinds.sleap.params import looks_like_override, override_key
from workers.kinds.sleap.plan import Request

USER_CONFIG = """\
data_config:
  preprocessing:
    scale: 0.5
model_config:
  backbone_config:
    unet:
      filters: 8
      output_stride: 2
  head_configs:
    single_instance:
      confmaps:
        sigma: 2.5
        output_stride: 2
trainer_config:
  max_epochs: 5
"""
OVERRIDES = {
    "trainer_config.optimizer.lr": "0.0005",
    "trainer_config.train_data_loader.batch_size": "2",
    "model_config.backbone_config.unet.filters_rate": "1.5",
    "data_config.augmentation_config.geometric.rotation_max": "30",
}


def request_for(spec: JobSpec, workdir: Path) -> Request:
    """The request the kind writes for ``spec`` (as its ``_request`` does)."""
    clean = SleapKind().validate(spec)
    params = {k: v for k, v in clean.params.items() if not looks_like_override(k)}
    overrides = {override_key(k): str(v) for k, v in clean.params.items() if looks_like_override(k)}
    return Request(
        action=clean.action.value,
        workdir=str(workdir),
        inputs={slot: [str(value)] for slot, value in clean.inputs.items()},
        params=params,
        overrides=overrides,
    )


def make_data(folder: Path) -> Path:
    """Tiny SLEAP data; returns a labels file with its video beside it."""
    argv = [sys.executable, "-m", TOOLS_MODULE, "make-data", str(folder)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    paths = dict(line.split(": ", 1) for line in out.splitlines())
    return Path(paths["slp_mp4"])


def step_env(cache: Path) -> dict[str, str]:
    """The prepare step's environment (this source tree first on the path, as the runner
    sets it), with its own cache folder."""
    source_root = str(Path(workers.__file__).resolve().parent.parent)
    paths = [source_root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {
        **os.environ,
        **STEP_ENV,
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
        "XDG_CACHE_HOME": str(cache),
    }


def run_prepare(job: Path, spec: JobSpec, cache: Path, extra: tuple[str, ...] = ()) -> float:
    """Write the request into a fresh job folder and run the step; return its seconds."""
    work = job / "work"
    work.mkdir(parents=True)
    write_json(work / REQUEST, request_for(spec, job))
    argv = [sys.executable, *extra, "-m", TOOLS_MODULE, "prepare", str(work)]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=step_env(cache), cwd=job)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"prepare failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    if extra:
        (job / "importtime.txt").write_text(done.stderr)
    return seconds


@dataclass
class Case:
    """One benchmarked request."""

    name: str
    spec: Callable[[Path, Path], JobSpec]


CASES = (
    Case("example", lambda labels, config: JobSpec("sleap", Action.TRAIN, {"input": "example"})),
    Case(
        "labels+config+overrides",
        lambda labels, config: JobSpec(
            "sleap",
            Action.TRAIN,
            {"input": str(labels), "config": str(config)},
            {"epochs": "3", **OVERRIDES},
        ),
    ),
)


def summarise(name: str, seconds: list[float]) -> str:
    """One line: median, p90 and max."""
    ordered = sorted(seconds)
    p90 = ordered[round(0.9 * (len(ordered) - 1))]
    return (
        f"{name:<34} median {statistics.median(ordered):6.2f} s   p90 {p90:6.2f} s   "
        f"max {ordered[-1]:6.2f} s   (n={len(ordered)})"
    )


def slowest_imports(text: str, count: int = 12) -> tuple[list[tuple[float, str]], bool]:
    """The top-level-ish imports with the largest cumulative time, and whether torch loaded."""
    found: list[tuple[float, str]] = []
    torch = False
    for line in text.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        module = parts[2]
        torch = torch or module.strip() == "torch"
        found.append((int(parts[1]) / 1e6, module))
    found.sort(reverse=True)
    return found[:count], torch


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        labels = make_data(root / "data")
        config = root / "data" / "config.yaml"
        config.write_text(USER_CONFIG)
        print(
            f"SLEAP prepare step, {args.runs} runs per case, each in a fresh job folder "
            "(target: median < 2 s)"
        )
        for case in CASES:
            spec = case.spec(labels, config)
            cache = root / "cache" / case.name
            runs = [
                run_prepare(root / "jobs" / case.name / str(i), spec, cache)
                for i in range(args.runs)
            ]
            print(f"{case.name:<34} cold (empty cache) {runs[0]:6.2f} s")
            print(summarise(f"{case.name}", runs[1:] or runs))
            if args.importtime:
                job = root / "jobs" / case.name / "importtime"
                run_prepare(job, spec, cache, ("-X", "importtime"))
                slow, torch = slowest_imports((job / "importtime.txt").read_text())
                print(f"  imports (cumulative s); torch imported: {'yes' if torch else 'no'}")
                for seconds, module in slow:
                    print(f"    {seconds:6.3f}  {module}")


if __name__ == "__main__":
    main()
