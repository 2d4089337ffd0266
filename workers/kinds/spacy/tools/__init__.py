"""The spaCy kind's tools, run as ``python -m workers.kinds.spacy.tools <command> ...``.

Commands:
  prepare WORK   check the training request in WORK/request.json, write the plan
  infer WORK     run a trained pipeline over texts (the request's, or the example's), as JSONL
  plot WORK PNG [--compare WORK2]   draw the losses and scores of a training so far (with
                 another job's beside them)
  card WORK      draw the end-of-training card (curves and model-best's dev scores)
  spacy [--no-torch] ARGS...   spaCy's own command line (train, package), optionally with
                 PyTorch kept out
  weasel run COMMAND DIR   a spaCy project's command, run by weasel as the project says

A refusal is printed as one ``colabot-spacy: error: <why>`` line and exits with status 2.
spaCy itself is imported only where it is needed, and PyTorch is kept out whenever the
pipeline does not use it (it costs seconds and about 800 MB to import).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from workers.kinds.base import PLOT_REFUSAL
from workers.kinds.plans import REQUEST, load, write_json
from workers.kinds.spacy.plan import (
    BEST,
    CARD,
    ERROR_PREFIX,
    PLAN_FILE,
    TRAINING_LOG,
    Request,
    read_plan,
)
from workers.kinds.spacy.tools.errors import ToolError

__all__ = ["main"]


def _request(work: Path) -> Request:
    request = load(Request, work / REQUEST)
    if request is None:
        raise ToolError(f"no request in {work} (the kind writes {REQUEST} before this step)")
    return request


def prepare(work: Path) -> int:
    """Check a training request and write its plan."""
    from workers.kinds.spacy.tools.prepare import prepare as plan_training

    plan = plan_training(_request(work))
    write_json(work / PLAN_FILE, plan)
    print(f"colabot-spacy: plan written to {work / PLAN_FILE}", flush=True)
    return 0


def infer(work: Path) -> int:
    """Annotate the texts and write the counts the kind reports."""
    from workers.kinds.spacy.tools.infer import inference_of, run_inference

    request = _request(work)
    plan = read_plan(work) if request.action == "train" else None
    stats = run_inference(request, inference_of(request, plan))
    write_json(request.stats, stats)
    print(f"colabot-spacy: wrote {stats['docs']} predictions to {request.predictions}", flush=True)
    return 0


def job_name(work: Path) -> str:
    """``#12``: a job's name in a picture, from its folder (``<jobs>/12/work``)."""
    return f"#{work.parent.name}"


def plot(work: Path, dest: Path | None, compare: Path | None = None) -> int:
    """Draw the losses and scores so far (with ``compare``'s beside them); refuse (status 2)
    when a job has no training log, or before the first evaluation."""
    from workers.kinds.spacy.tools.plot import plot_compared, plot_training

    logs = []
    for folder in (work, compare) if compare is not None else (work,):
        log = Path(_request(folder).outputs) / TRAINING_LOG
        if not log.is_file():
            whose = f"job {job_name(folder)}" if compare is not None else "this job"
            print(
                PLOT_REFUSAL + f"colabot has no training log for {whose} yet (a spaCy "
                "project's own training is not followed)",
                flush=True,
            )
            return 2
        logs.append((job_name(folder), log))
    if compare is not None and dest is not None:
        drawn = plot_compared(logs, dest)
    else:
        drawn = None if dest is None else plot_training(logs[0][1], dest)
    if drawn is None:
        print(PLOT_REFUSAL + "no evaluation has run yet; the first point comes with it")
        return 2
    print(f"drew {dest}", flush=True)
    return 0


def card(work: Path) -> int:
    """Draw the end-of-training card. It is a view of the results, so it never fails the
    job: when it cannot be drawn, one line says why."""
    from workers.kinds.spacy.report import read_scores, read_training_log
    from workers.kinds.spacy.tools.plot import draw_card

    request = _request(work)
    dest = Path(request.outputs) / CARD
    title = f"{job_name(work)} spaCy training: model-best on the dev data"
    try:
        plan = read_plan(work)
        events = read_training_log(Path(request.outputs) / TRAINING_LOG)
        drawn = draw_card(events, read_scores(Path(plan.output) / BEST), dest, title)
    except Exception as exc:  # matplotlib's own failures included: the card is only a view
        print(f"colabot-spacy: no training card: {type(exc).__name__}: {exc}", flush=True)
        return 0
    if drawn is None:
        print("colabot-spacy: no training card: nothing was evaluated", flush=True)
        return 0
    print(f"colabot-spacy: drew the training card {drawn}", flush=True)
    return 0


COMMANDS: dict[str, Callable[[Path], int]] = {
    "prepare": prepare,
    "infer": infer,
    "card": card,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 when the request is refused)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["spacy"]:
        from workers.kinds.spacy.tools.cli import run_spacy

        run_spacy(args[1:])
        return 0
    if args[:1] == ["weasel"]:
        from workers.kinds.spacy.tools.cli import run_weasel

        run_weasel(args[1:])
        return 0
    parser = argparse.ArgumentParser(prog="spacy_tools", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=sorted([*COMMANDS, "plot"]))
    parser.add_argument("work", type=Path)
    parser.add_argument("dest", type=Path, nargs="?", help="the picture to draw (plot)")
    parser.add_argument("--compare", type=Path, help="plot: another job's work folder")
    parsed = parser.parse_args(args)
    try:
        if parsed.command == "plot":
            compare = parsed.compare.resolve() if parsed.compare is not None else None
            return plot(parsed.work.resolve(), parsed.dest, compare)
        return COMMANDS[parsed.command](parsed.work.resolve())
    except ToolError as exc:
        print(ERROR_PREFIX + str(exc), flush=True)
        return 2
