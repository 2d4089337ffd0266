"""The SLEAP kind's tools: ``python -m workers.kinds.sleap.tools <command> ...``.

Commands:
  prepare WORK          check the inputs in WORK/request.json, write WORK/plan.json
  finish-training WORK  settle trained models, draw the loss curve, write WORK/result.json
  export WORK           export predictions (CSV, analysis HDF5) and draw a preview
  preview WORK [--budget S] [--limit S]
                        draw a clip of the predictions on the video and pick the frames to
                        label next (in a child process that cannot fail the job); views.json
  plot WORK PNG [--compare OTHER_WORK]
                        draw the loss so far of a running or finished training (with
                        --compare: both jobs' loss curves in one picture)
  sleap-nn ARGS...      sleap-nn's own command line (training polls for a stop without waiting)
  make-data FOLDER      write small synthetic SLEAP data and training packages to try things

A refusal is printed as ``sleap_tools: error: <why>`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workers.errors import ArchiveError
from workers.kinds.base import PLOT_REFUSAL
from workers.kinds.plans import REQUEST, write_json
from workers.kinds.sleap.plan import PLAN, Plan, load_plan, load_request
from workers.kinds.sleap.tools.errors import ToolError

ERROR_PREFIX = "sleap_tools: error: "


def prepare(work: Path) -> int:
    """Check a job's inputs and write its plan; print the summary."""
    from workers.kinds.sleap.tools.infer_plan import prepare_inference
    from workers.kinds.sleap.tools.train_plan import prepare_training

    request = load_request(work / REQUEST)
    plan = prepare_training(request) if request.action == "train" else prepare_inference(request)
    for prediction in plan.predictions:
        Path(prediction.output).parent.mkdir(parents=True, exist_ok=True)
    write_json(work / PLAN, plan)
    print(plan.summary, flush=True)
    return 0


def _planned(work: Path) -> Plan:
    plan = load_plan(work)
    if plan is None:
        raise ToolError("the job's plan is missing (the prepare step did not finish)")
    return plan


def finish_training(work: Path) -> int:
    """Settle models, draw the loss curve and record the outputs."""
    from workers.kinds.sleap.tools.finish import finish_training as finish

    plan = _planned(work)
    result = finish(plan, work, work.parent / "outputs")
    print(result.summary, flush=True)
    return 0


def export(work: Path) -> int:
    """Export predictions and draw the preview."""
    from workers.kinds.sleap.tools.finish import export_predictions

    plan = _planned(work)
    result = export_predictions(plan, work)
    print(result.summary, flush=True)
    return 0


def make_data(folder: Path) -> int:
    """Write every kind of test input into ``folder`` and print their paths."""
    from workers.kinds.sleap.tools.example import make_package, make_test_data

    paths = make_test_data(folder)
    paths["package"] = make_package(paths["pkg"], folder / "project.slp.training_job.zip")
    paths["package14"] = make_package(
        paths["pkg"],
        folder / "project14.slp.training_job.zip",
        style="1.4",
        heads=("single_instance",),
    )
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def job_label(work: Path) -> str:
    """A job's name in a picture: ``#12`` for the work folder of job 12's folder."""
    name = work.resolve().parent.name
    return f"#{name}" if name.isdigit() else name


def plot_compared(work: Path, dest: Path, other: Path) -> int:
    """Draw two jobs' loss curves in one picture; refuse (status 2) when there is none."""
    from workers.kinds.sleap.tools.card import draw_comparison
    from workers.kinds.sleap.tools.finish import loss_so_far

    jobs = []
    for folder in (work, other):
        plan = load_plan(folder)
        if plan is None or not plan.models:
            print(PLOT_REFUSAL + f"job {job_label(folder)} planned no training", flush=True)
            return 2
        jobs.append((job_label(folder), loss_so_far(plan)))
    if draw_comparison(jobs, dest) is None:
        print(PLOT_REFUSAL + "neither job has finished an epoch", flush=True)
        return 2
    print(f"drew {dest}", flush=True)
    return 0


def plot(work: Path, dest: Path | None, compare: Path | None = None) -> int:
    """Draw the loss so far (with ``compare``, beside another job's); refuse (status 2) when
    no epoch has ended yet."""
    from workers.kinds.sleap.tools.finish import loss_so_far, plot_losses

    if compare is not None and dest is not None:
        return plot_compared(work, dest, compare)
    plan = load_plan(work)
    if plan is None or not plan.models:
        print(PLOT_REFUSAL + "the job has not planned its training yet", flush=True)
        return 2
    if dest is None or plot_losses(loss_so_far(plan), dest) is None:
        print(
            PLOT_REFUSAL + "no epoch has ended yet; the first point comes when epoch 1 ends "
            "(/status shows the loss of the current step)",
            flush=True,
        )
        return 2
    print(f"drew {dest}", flush=True)
    return 0


VIEW_COMMANDS = ("preview", "draw-views")
"""``preview`` runs ``draw-views`` (the drawing itself) as its child."""

COMMANDS = {
    "prepare": prepare,
    "finish-training": finish_training,
    "export": export,
    "make-data": make_data,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["sleap-nn"]:
        from workers.kinds.sleap.tools.train import run_sleap_nn

        run_sleap_nn(args[1:])
        return 0
    parser = argparse.ArgumentParser(prog="sleap_tools", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=sorted([*COMMANDS, "plot", *VIEW_COMMANDS]))
    parser.add_argument("folder", type=Path)
    parser.add_argument("dest", type=Path, nargs="?", help="the picture to draw (plot)")
    parser.add_argument("--budget", type=float, help="seconds to render the clip (preview)")
    parser.add_argument("--limit", type=float, help="seconds for the whole preview step")
    parser.add_argument("--compare", type=Path, help="another job's work folder (plot)")
    parsed = parser.parse_args(args)
    try:
        if parsed.command == "plot":
            return plot(parsed.folder, parsed.dest, parsed.compare)
        if parsed.command in VIEW_COMMANDS:
            from workers.kinds.sleap.params import CLIP_BUDGET_S, VIEWS_LIMIT_S
            from workers.kinds.sleap.tools import preview

            budget = CLIP_BUDGET_S if parsed.budget is None else parsed.budget
            if parsed.command == "draw-views":
                return preview.draw_views(parsed.folder, budget)
            limit = VIEWS_LIMIT_S if parsed.limit is None else parsed.limit
            return preview.preview(parsed.folder, budget, limit)
        return COMMANDS[parsed.command](parsed.folder)
    except (ToolError, ArchiveError) as exc:
        print(ERROR_PREFIX + str(exc), flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
