"""Pure views of reports across jobs: two trainings compared side by side, and who used how
many GPU-hours."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.views import View, esc, pre
from workers.quality import NOT_EVALUATED, ModelScores, Score, differing_params
from workers.sharing.accounting import Usage

if TYPE_CHECKING:
    from workers.engine import Comparison


def gpu_usage_view(
    week: Sequence[Usage],
    total: Sequence[Usage],
    user_id: int | None,
    *,
    everyone: bool = False,
    quota: float | None = None,
) -> View:
    """/usage: the caller's GPU-hours (and CPU wall-hours) this week and in total, against
    the weekly quota; with ``everyone`` (an admin), one line per person this week."""

    def hours(found: Sequence[Usage], owner: int | None) -> tuple[float, float]:
        mine = [u for u in found if u.owner_id == owner]
        return sum(u.gpu_hours for u in mine), sum(u.cpu_hours for u in mine)

    gpu_week, cpu_week = hours(week, user_id)
    gpu_total, cpu_total = hours(total, user_id)
    limit = f" of {quota:g}" if quota is not None else ""
    lines = [
        "<b>Your usage</b>",
        f"this week: {gpu_week:.2f}{limit} GPU-hours · {cpu_week:.2f} CPU wall-hours",
        f"in total: {gpu_total:.2f} GPU-hours · {cpu_total:.2f} CPU wall-hours",
    ]
    if everyone:
        lines.append("<b>Everyone this week</b>")
        for row in week:
            name = row.name or ("jobs without an owner" if row.owner_id is None else "")
            lines.append(
                f"• {esc(name or f'user {row.owner_id}')}: {row.gpu_hours:.2f} GPU-h · "
                f"{row.cpu_hours:.2f} CPU-h"
            )
        if not week:
            lines.append("nobody ran anything yet")
    return View("\n".join(lines))


def compare_view(comparison: Comparison) -> View:
    """/compare: two trainings' held-out scores side by side per model and split, what
    they asked for differently, whether they learnt from the same data, and why there is
    no picture of both loss curves when there is none."""
    first, second = comparison.first, comparison.second
    a, b = f"#{first.id}", f"#{second.id}"
    qa, qb = comparison.first_quality, comparison.second_quality
    lines = [f"<b>{a} vs {b}</b> ({esc(first.spec.kind)} training)"]
    for job, kept in ((first, qa), (second, qb)):
        if kept is None or not kept.models:
            lines.append(f"#{job.id} kept no held-out scores.")
    by_a = {(m.model, m.split): m for m in (qa.models if qa else ())}
    by_b = {(m.model, m.split): m for m in (qb.models if qb else ())}
    for key in [*by_a, *(k for k in by_b if k not in by_a)]:
        one = by_a.get(key) or (ModelScores(*key, note="has no such model") if by_a else None)
        other = by_b.get(key) or (ModelScores(*key, note="has no such model") if by_b else None)
        lines.extend(_model_side_by_side(key, one, other, a, b))
    if qa is not None and qb is not None:
        asked_a, asked_b = qa.params, qb.params
    else:
        asked_a, asked_b = first.spec.params, second.spec.params
    differ = differing_params(asked_b, asked_a)
    lines.append(
        f"differing parameters ({a} → {b}): " + esc(", ".join(differ) if differ else "none")
    )
    if qa is not None and qb is not None and qa.data and qb.data:
        lines.append(
            "same training data"
            if qa.data == qb.data
            else "trained on different data: their held-out sets differ too"
        )
    if comparison.picture is None:
        lines.append(f"No loss picture: {esc(comparison.picture_note or 'none was drawn')}")
    return View("\n".join(lines))


def _model_side_by_side(
    key: tuple[str, str], one: ModelScores | None, other: ModelScores | None, a: str, b: str
) -> list[str]:
    """One model and split of /compare: a table of each score for both jobs and the change,
    or why a job has none (None: the job kept no scores at all, as said above)."""
    model, split = key
    where = f"{model} ({split})" if split else model
    missing = [
        f"{name} {esc(scores.note or NOT_EVALUATED)}"
        for name, scores in ((a, one), (b, other))
        if scores is not None and not scores.scores
    ]
    named: dict[str, tuple[Score | None, Score | None]] = {}
    for index, scores in enumerate((one, other)):
        for score in scores.scores if scores else ():
            pair = named.get(score.name, (None, None))
            named[score.name] = (score, pair[1]) if index == 0 else (pair[0], score)
    lines = [f"<b>{esc(where)}</b>" + (": " + "; ".join(missing) if missing else "")]
    if not named:
        return lines
    rows = [("", a, b, "")]
    for name, (x, y) in named.items():
        unit = (x or y or Score(name, None)).unit
        change = ""
        if x is not None and y is not None and x.value is not None and y.value is not None:
            change = f"{y.value - x.value:+.3g}" if y.value != x.value else "±0"
        rows.append((f"{name} {unit}".strip(), _score_value(x), _score_value(y), change))
    width = max(len(row[0]) for row in rows)
    table = [f"{row[0]:<{width}} {row[1]:>7} {row[2]:>7} {row[3]:>7}".rstrip() for row in rows]
    lines.append(pre(table))
    weakest = [f"{n} {s.weakest}" for n, s in ((a, one), (b, other)) if s and s.weakest]
    if weakest:
        lines.append("weakest: " + esc(" · ".join(weakest)))
    return lines


def _score_value(score: Score | None) -> str:
    if score is None or score.value is None:
        return "—"
    return f"{score.value:.3g}" if score.unit else f"{score.value:.3f}"


def compare_caption(comparison: Comparison) -> str:
    """The caption of /compare's picture."""
    first, second = comparison.first, comparison.second
    return f"#{first.id} vs #{second.id} ({first.spec.kind}): loss"
