"""The selftest job: prints progress, writes outputs, can fail, flood or stop slowly on request.

It imports nothing heavy.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sys
import time
from pathlib import Path

from workers.kinds.selftest.plan import FLOOD_LINE, Request
from workers.safety.files import is_plain_file


def _digest(path: Path) -> dict[str, object]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return {
            "name": path.name,
            "files": len(files),
            "bytes": sum(p.stat().st_size for p in files),
        }
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": sha.hexdigest()}


def _flood(megabytes: float) -> None:
    """Write whole flood lines, about ``megabytes`` MB, as fast as possible."""
    lines = int(megabytes * 1024 * 1024) // len(FLOOD_LINE)
    block_lines = 10_000
    block = FLOOD_LINE * block_lines
    out = sys.stdout.buffer
    while lines > 0:
        count = min(lines, block_lines)
        out.write(block if count == block_lines else FLOOD_LINE * count)
        lines -= count
    out.flush()


def _save_checkpoint(folder: Path, step: int) -> None:
    """Write the new checkpoint whole, then drop older ones: one is always there to copy."""
    tmp = folder / f".step-{step}.json.tmp"
    tmp.write_text(json.dumps({"step": step}))
    tmp.replace(folder / f"step-{step}.json")
    for old in folder.glob("step-*.json"):
        if old.name != f"step-{step}.json":
            old.unlink()


def _resume_step(checkpoint: Path | None) -> int:
    if checkpoint is None:
        return 0
    return int(json.loads(checkpoint.read_text())["step"])


def _stop_slowly(seconds: float) -> None:
    """On SIGINT or SIGTERM, go on for ``seconds`` and then exit (like saving a checkpoint)."""

    def stop(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        print(f"selftest: got {name}, stopping in {seconds:g} s", flush=True)
        time.sleep(seconds)
        sys.exit(130)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def run(request: Request) -> int:
    """Run the job a request describes; returns the exit code."""
    out = Path(request.out)
    source = Path(request.input) if request.input else None
    resume_from = Path(request.resume_from) if request.resume_from else None
    if request.stop_delay:
        _stop_slowly(request.stop_delay)

    out.mkdir(parents=True, exist_ok=True)
    checkpoints = out / "checkpoints"
    checkpoints.mkdir(exist_ok=True)
    first = _resume_step(resume_from) + 1
    if first > 1:
        print(f"selftest: resuming after step {first - 1}", flush=True)
    print(f"selftest: {request.mode} with {request.steps} steps", flush=True)
    if source is not None and not source.exists():
        print(f"selftest: error: input {source} does not exist", flush=True)
        return 2
    if request.flood_mb:
        _flood(request.flood_mb)
    loss = 1.0
    stop_file = Path(request.stop_file) if request.stop_file else None
    done = first - 1
    for step in range(first, request.steps + 1):
        if request.fail and step > request.steps // 2:
            print(f"selftest: error: told to fail at step {step}", flush=True)
            return 3
        time.sleep(request.delay)
        loss = round(1.0 / (step + 1), 4)
        print(f"progress {step}/{request.steps} loss={loss}", flush=True)
        if request.mode == "train":
            _save_checkpoint(checkpoints, step)
        done = step
        if stop_file is not None and is_plain_file(stop_file):  # a planted link is no stop
            print(f"selftest: stopped early at step {step} of {request.steps}", flush=True)
            break

    result: dict[str, object] = {
        "mode": request.mode,
        "steps": request.steps,
        "steps_done": done,
        "first_step": first,
        "loss": loss,
        "input": _digest(source) if source else None,
        "models": list(request.models),
    }
    if request.mode == "train":
        model = out / "model"
        model.mkdir(exist_ok=True)
        (model / "weights.json").write_text(json.dumps({"loss": loss, "steps": request.steps}))
    else:
        with (out / "predictions.jsonl").open("w") as handle:
            for i in range(request.steps):
                handle.write(json.dumps({"id": i, "label": "ok"}) + "\n")
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(f"selftest: wrote {out / 'result.json'}", flush=True)
    return 0
