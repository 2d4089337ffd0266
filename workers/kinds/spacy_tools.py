"""The spaCy kind's job programs, run as ``python -m workers.kinds.spacy_tools <command>``.

``prepare`` turns a training request into a plan (``spacy_prepare``); ``infer`` runs a trained
pipeline over texts and writes JSONL (``spacy_infer``). This module only parses the command
line, writes the result files and turns a refusal into one ``colabot-spacy: error:`` line.

spaCy itself is imported only by the example generator and by inference, and PyTorch is kept
out whenever the pipeline does not use it (it costs seconds and about 800 MB to import).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workers.kinds.spacy_infer import run_inference
from workers.kinds.spacy_prepare import prepare
from workers.kinds.spacy_protocol import ERROR_PREFIX, ToolError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spacy_tools")
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="check a training request and plan it")
    prep.add_argument("--plan", type=Path, required=True)
    prep.add_argument("--work", type=Path, required=True)
    prep.add_argument("--output", type=Path, required=True)
    prep.add_argument("--gpu", default="auto")
    prep.add_argument("--example", action="store_true")
    prep.add_argument("--config", type=Path)
    prep.add_argument("--train", type=Path)
    prep.add_argument("--dev", type=Path)
    prep.add_argument("--max-steps", type=int)
    prep.add_argument("--eval-frequency", type=int)
    prep.add_argument("--workflow")
    prep.add_argument("--override", action="append", default=[])
    prep.add_argument("--resume-from", type=Path)
    prep.add_argument("--package-dir", type=Path)
    infer = commands.add_parser("infer", help="annotate texts with a trained pipeline")
    infer.add_argument("--model", type=Path, required=True)
    infer.add_argument("--texts", type=Path, required=True)
    infer.add_argument("--out", type=Path, required=True)
    infer.add_argument("--stats", type=Path, required=True)
    infer.add_argument("--work", type=Path, required=True)
    infer.add_argument("--gpu", default="auto")
    infer.add_argument("--batch-size", type=int, default=64)
    infer.add_argument("--text-key", default="text")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 when the request is refused)."""
    args = _parser().parse_args(argv)
    for name, value in vars(args).items():
        if isinstance(value, Path):
            setattr(args, name, value.resolve())
    try:
        if args.command == "prepare":
            if not args.example and args.config is None:
                raise ToolError("no config: give a .cfg file, a folder or a zip")
            plan = prepare(args)
            _write_json(args.plan, plan.to_dict())
            print(f"colabot-spacy: plan written to {args.plan}", flush=True)
        else:
            stats = run_inference(args)
            _write_json(args.stats, stats)
            print(f"colabot-spacy: wrote {stats['docs']} predictions to {args.out}", flush=True)
    except ToolError as exc:
        print(ERROR_PREFIX + str(exc), flush=True)
        return 2
    return 0


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
