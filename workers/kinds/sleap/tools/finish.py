"""The closing steps of SLEAP jobs: settle the trained models, read their held-out scores,
draw the training card (loss curves and scores), export predictions (CSV, analysis HDF5) and
draw a preview frame. Writes ``result.json``.

Runs in job subprocesses only (matplotlib, sleap-io).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from workers.kinds.plans import read_json, write_json
from workers.kinds.sleap.plan import (
    RESULT,
    STOPPED,
    ModelPlan,
    OutputRecord,
    Plan,
    Result,
    load_result,
    set_aside,
)
from workers.kinds.sleap.progress import EpochRow, loss_curves, merge_log_text, parse_log
from workers.kinds.sleap.report import (
    held_out_lines,
    joined,
    model_line,
    no_predictions_line,
    prediction_line,
    training_summary,
)
from workers.kinds.sleap.tools.card import CardModel, draw_card
from workers.kinds.sleap.tools.metrics import held_out
from workers.outputs import LOG_NAME
from workers.quality import ModelScores, Quality

CARD_PNG = "training-card.png"
PREVIEW_PNG = "preview.png"


# ------------------------------------------------------------------------------------ training


def _best_val(rows: list[EpochRow]) -> float | None:
    values = [r.val_loss for r in rows if r.val_loss is not None]
    return min(values) if values else None


def settle_model(model: ModelPlan, work: Path) -> list[EpochRow]:
    """Put a trained model in its final folder, with the whole history of its training.

    A continued run trained in ``work/attempt-N``: its folder replaces the old one, its log
    is joined to the earlier epochs', and the earlier ``best.ckpt`` is kept when it was
    better than anything the continuation reached.
    """
    run_dir, final = Path(model.run_dir), Path(model.final_dir)
    log = run_dir / "training_log.csv"
    text = log.read_text() if log.is_file() else ""
    if model.history and Path(model.history).is_file():
        earlier = Path(model.history).read_text()
        earlier_best, later_best = _best_val(parse_log(earlier)), _best_val(parse_log(text))
        text = merge_log_text(earlier, text)
        best = Path(model.earlier_best) if model.earlier_best else None
        if (
            best is not None
            and best.is_file()
            and earlier_best is not None
            and (later_best is None or earlier_best < later_best)
        ):
            shutil.copy2(best, run_dir / "best.ckpt")
    if run_dir.resolve() != final.resolve() and run_dir.is_dir():
        if final.exists():
            set_aside(final, work, "replaced")
        final.parent.mkdir(parents=True, exist_ok=True)
        run_dir.replace(final)
    if text:
        (final / "training_log.csv").write_text(text)
    return parse_log(text)


def plot_losses(curves: list[tuple[str, list[EpochRow]]], dest: Path) -> Path | None:
    """One panel per model: train and validation loss per epoch. None when nothing to draw."""
    drawable = [(title, rows) for title, rows in curves if rows]
    if not drawable:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(drawable), figsize=(5.5 * len(drawable), 3.8), squeeze=False, dpi=110
    )
    for ax, (title, rows) in zip(axes[0], drawable, strict=True):
        train, val = loss_curves(rows)
        if train:
            ax.plot(*zip(*train, strict=True), "o-", label="train loss", markersize=3)
        if val:
            ax.plot(*zip(*val, strict=True), "s-", label="validation loss", markersize=3)
        values = [v for _, v in train + val if v > 0]
        if values and max(values) / min(values) > 20:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest)
    plt.close(fig)
    return dest


def finish_training(plan: Plan, work: Path, outputs: Path) -> Result:
    """Settle every model, read its held-out scores, draw the training card, and record the
    outputs, the scores and the training data's fingerprint."""
    result = Result()
    cards: list[CardModel] = []
    scores: list[ModelScores] = []
    lines = []
    stopped = set(read_json(work / STOPPED) or [])
    heads = [m.head for m in plan.models]
    for model in plan.models:
        rows = settle_model(model, work) if not model.skip else _rows(Path(model.final_dir))
        title = f"model {model.index}: {model.head}" if len(plan.models) > 1 else model.head
        # Named by its head, as the same package's next run names it (to compare the two).
        name = model.head if heads.count(model.head) == 1 else f"{model.head} {model.index}"
        found = _held_out(name, model, work.parent / LOG_NAME)
        scores += found
        cards.append(CardModel(title, rows, found))
        result.outputs.append(OutputRecord(model.final_dir, "model", f"model {model.run_name}"))
        best = _best_val(rows)
        epochs = max((r.epoch for r in rows), default=-1) + 1
        prefix = f"{model.head}/" if len(plan.models) > 1 else ""
        result.metrics[f"{prefix}epochs"] = float(epochs)
        if best is not None:
            result.metrics[f"{prefix}best_val_loss"] = best
        last = rows[-1] if rows else None
        if last is not None and last.val_loss is not None:
            result.metrics[f"{prefix}final_val_loss"] = last.val_loss
        early = model.max_epochs if model.run_name in stopped else None
        if early is not None:
            result.metrics[f"{prefix}stopped_early_at_epoch"] = float(epochs)
        lines.append(model_line(model.head, epochs, best, early))
    card = _card(cards, outputs / CARD_PNG)
    if card is not None:
        many = "s" if len(cards) > 1 else ""
        caption = f"training card: loss curve{many} and held-out scores"
        result.outputs.append(OutputRecord(str(card), "plot", caption, photo=True))
    result.summary = "\n".join([training_summary(lines), *held_out_lines(scores)])
    result.quality = Quality(data=plan.data, models=tuple(scores)).to_dict()
    write_json(work / RESULT, result)
    return result


def _held_out(name: str, model: ModelPlan, job_log: Path) -> list[ModelScores]:
    """The model's held-out scores; reading them never fails the job (the model is the
    result), so anything unexpected becomes the line that says so."""
    try:
        return held_out(name, model.head, Path(model.final_dir), job_log)
    except Exception as exc:
        why = f"its held-out scores could not be read ({type(exc).__name__}: {exc})"
        return [ModelScores(name, "val", note=why)]


def _card(cards: list[CardModel], dest: Path) -> Path | None:
    """The training card, or None (and a line in the log) when it cannot be drawn."""
    try:
        return draw_card(cards, dest)
    except Exception as exc:
        print(f"no training card: {type(exc).__name__}: {exc}", flush=True)
        return None


def loss_so_far(plan: Plan) -> list[tuple[str, list[EpochRow]]]:
    """Each model's epochs so far, titled as in the loss curve, without moving anything: a
    model in training, one continued after an interruption, or one already settled."""
    curves = []
    for model in plan.models:
        run_log = Path(model.run_dir) / "training_log.csv"
        if not model.skip and run_log.is_file():
            text = run_log.read_text()
            if model.history and Path(model.history).is_file():
                text = merge_log_text(Path(model.history).read_text(), text)
            rows = parse_log(text)
        else:
            rows = _rows(Path(model.final_dir))
        title = f"model {model.index}: {model.head}" if len(plan.models) > 1 else model.head
        curves.append((title, rows))
    return curves


def _rows(run_dir: Path) -> list[EpochRow]:
    log = run_dir / "training_log.csv"
    return parse_log(log.read_text()) if log.is_file() else []


# ----------------------------------------------------------------------------------- inference


def _stem(path: Path) -> str:
    return path.name[: -len(".slp")] if path.name.endswith(".slp") else path.stem


def render_preview(labels_path: Path, dest: Path) -> tuple[Path, str] | None:
    """Draw the frame with the most confident predictions (or the first frame when nothing
    was found); (png, caption), or None when there is no frame at all."""
    import sleap_io as sio

    labels = sio.load_slp(str(labels_path))
    if not labels.labeled_frames:
        return None
    scored = [
        (len(lf.predicted_instances), _mean_score(lf), i)
        for i, lf in enumerate(labels.labeled_frames)
    ]
    count, _score, index = max(scored)
    frame = labels.labeled_frames[index]
    height = frame.video.shape[1] if frame.video.shape else 512
    scale = max(1.0, min(4.0, 512 / max(1, height)))
    sio.render_image(labels, save_path=str(dest), lf_ind=index, scale=scale, marker_size=3.0)
    found = {0: "no animals found", 1: "1 animal found"}.get(count, f"{count} animals found")
    return dest, f"preview: frame {frame.frame_idx}, {found}"


def _mean_score(frame: object) -> float:
    scores = [
        float(getattr(i, "score", 0.0) or 0.0) for i in getattr(frame, "predicted_instances", [])
    ]
    return sum(scores) / len(scores) if scores else 0.0


def export_predictions(plan: Plan, work: Path) -> Result:
    """CSV and analysis HDF5 for each predictions file, a preview of the first; result.json."""
    result = load_result(work)
    lines = []
    preview_done = False
    for prediction in plan.predictions:
        out = Path(prediction.output)
        if not out.is_file():
            lines.append(no_predictions_line(Path(prediction.data).name))
            continue
        lines.append(_export_one(out, Path(prediction.data).name, result))
        # On a video the preview step sends a clip and the frames to label next instead.
        if not preview_done and not prediction.on_video:
            preview_done = _add_preview(out, out.parent / f"{_stem(out)}.{PREVIEW_PNG}", result)
    result.summary = joined(result.summary, lines)
    write_json(work / RESULT, result)
    return result


def _export_one(out: Path, source: str, result: Result) -> str:
    """Record a predictions file and its CSV and analysis HDF5 exports; a summary line."""
    import sleap_io as sio

    labels = sio.load_slp(str(out))
    stem, folder = _stem(out), out.parent
    result.outputs.append(OutputRecord(str(out), "predictions", out.name))
    csv_path = folder / f"{stem}.csv"
    sio.save_csv(labels, str(csv_path), format="sleap")
    result.outputs.append(OutputRecord(str(csv_path), "export", csv_path.name))
    for i, video in enumerate(labels.videos):
        if not labels.find(video):
            continue
        name = f"{stem}.analysis.h5" if len(labels.videos) == 1 else f"{stem}.{i}.analysis.h5"
        sio.save_analysis_h5(labels, str(folder / name), video=i, labels_path=str(out))
        result.outputs.append(OutputRecord(str(folder / name), "export", name))
    frames = len(labels.labeled_frames)
    instances = sum(len(lf.predicted_instances) for lf in labels.labeled_frames)
    for key, value in (("predicted_frames", frames), ("predicted_instances", instances)):
        result.metrics[key] = result.metrics.get(key, 0) + value
    return prediction_line(source, frames, instances)


def _add_preview(predictions: Path, dest: Path, result: Result) -> bool:
    try:
        drawn = render_preview(predictions, dest)
    except Exception as exc:
        print(f"no preview: {type(exc).__name__}: {exc}")
        return False
    if drawn is None:
        print("no preview: the predictions hold no frames")
        return False
    path, caption = drawn
    result.outputs.append(OutputRecord(str(path), "preview", caption, photo=True))
    return True
