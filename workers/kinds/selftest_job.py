"""The selftest job program: prints progress, writes outputs, can fail or run long on request.

Run as ``python -m workers.kinds.selftest_job``; it imports nothing heavy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import time
from pathlib import Path

FLOOD_LINE = b"flood " + b"x" * 93 + b"\n"


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
        print(f"selftest: stopping in {seconds:g} s", flush=True)
        time.sleep(seconds)
        sys.exit(130)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="selftest_job")
    parser.add_argument("--mode", choices=["train", "infer"], default="train")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--input", type=Path)
    parser.add_argument("--model", type=Path, action="append", default=[])
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--flood-mb", type=float, default=0.0)
    parser.add_argument("--resume-from", type=Path)
    parser.add_argument("--stop-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.stop_delay:
        _stop_slowly(args.stop_delay)

    args.out.mkdir(parents=True, exist_ok=True)
    checkpoints = args.out / "checkpoints"
    checkpoints.mkdir(exist_ok=True)
    first = _resume_step(args.resume_from) + 1
    if first > 1:
        print(f"selftest: resuming after step {first - 1}", flush=True)
    print(f"selftest: {args.mode} with {args.steps} steps", flush=True)
    if args.input is not None and not args.input.exists():
        print(f"selftest: error: input {args.input} does not exist", flush=True)
        return 2
    if args.flood_mb:
        _flood(args.flood_mb)
    loss = 1.0
    for step in range(first, args.steps + 1):
        if args.fail and step > args.steps // 2:
            print(f"selftest: error: told to fail at step {step}", flush=True)
            return 3
        time.sleep(args.delay)
        loss = round(1.0 / (step + 1), 4)
        print(f"progress {step}/{args.steps} loss={loss}", flush=True)
        if args.mode == "train":
            _save_checkpoint(checkpoints, step)

    result: dict[str, object] = {
        "mode": args.mode,
        "steps": args.steps,
        "first_step": first,
        "loss": loss,
        "input": _digest(args.input) if args.input else None,
        "models": [str(m) for m in args.model],
    }
    if args.mode == "train":
        model = args.out / "model"
        model.mkdir(exist_ok=True)
        (model / "weights.json").write_text(json.dumps({"loss": loss, "steps": args.steps}))
    else:
        with (args.out / "predictions.jsonl").open("w") as handle:
            for i in range(args.steps):
                handle.write(json.dumps({"id": i, "label": "ok"}) + "\n")
    (args.out / "result.json").write_text(json.dumps(result, indent=2))
    print(f"selftest: wrote {args.out / 'result.json'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
