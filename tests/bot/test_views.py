"""Pure message views."""

from __future__ import annotations

import dataclasses

from bot import views
from tests.helpers.views import NOW, SCORES, job
from workers.jobs import Action, JobSpec, JobState, Link, Progress
from workers.kinds.registry import default_registry


def labels(view: views.View) -> list[str]:
    return [b.label for row in view.buttons for b in row]


def test_progress_bar() -> None:
    assert views.progress_bar(0.5, width=4) == "▓▓░░ 50%"
    assert views.progress_bar(3.0, width=2) == "▓▓ 100%"


def test_buttons_follow_the_state() -> None:
    running = views.live_status(job(JobState.RUNNING), now=NOW)
    assert labels(running) == ["Status", "Logs", "Stop early", "Cancel"]
    inferring = dataclasses.replace(job(JobState.RUNNING), spec=JobSpec("selftest", Action.INFER))
    assert labels(views.live_status(inferring, now=NOW)) == ["Status", "Logs", "Cancel"]
    assert labels(views.live_status(job(JobState.SUCCEEDED, finished_at=NOW), now=NOW)) == [
        "Status",
        "Logs",
        "Results",
    ]
    assert labels(views.live_status(job(JobState.FAILED, finished_at=NOW), now=NOW)) == [
        "Status",
        "Logs",
        "Resume",
    ]
    # An interrupted job can be resumed, or dropped for good.
    assert labels(views.live_status(job(JobState.INTERRUPTED, finished_at=NOW), now=NOW)) == [
        "Status",
        "Logs",
        "Resume",
        "Cancel",
    ]
    assert labels(views.live_status(job(JobState.CANCELLED, finished_at=NOW), now=NOW)) == [
        "Status",
        "Logs",
    ]


def test_live_status_shows_progress_eta_and_metrics() -> None:
    running = job(
        JobState.RUNNING,
        progress=Progress(fraction=0.25, eta_s=75, metrics={"loss": 0.5}),
    )
    text = views.live_status(running, "train", now=NOW).text
    assert "running for 1m 30s · train" in text
    assert "▓▓▓░░░░░░░░░ 25%" in text
    assert "loss 0.5" in text and "ETA 1m 15s" in text


def test_the_figures_a_progress_message_says_are_not_repeated_raw() -> None:
    said = "epoch 2 of 10 · step 27 of 60 · 27.5 steps/s · train loss 0.001693 · val loss 0.0017"
    progress = Progress(
        fraction=0.15,
        message=said,
        metrics={"steps_per_s": 27.51, "train_loss": 0.001693, "val_loss": 0.0017},
    )
    for text in (
        views.live_status(job(JobState.RUNNING, progress=progress), "train", now=NOW).text,
        views.status_view(job(JobState.RUNNING, progress=progress), "train", [], now=NOW).text,
    ):
        assert said in text
        assert "steps_per_s" not in text and "train_loss" not in text


def test_failed_view_escapes_log_lines() -> None:
    failed = job(JobState.FAILED, finished_at=NOW, error="x")
    text = views.failed_view(failed, "exited with code 1", ["<tag> & stuff"], "train").text
    assert "failed in step train" in text
    assert "Reason: exited with code 1" in text
    assert "<pre>&lt;tag&gt; &amp; stuff</pre>" in text


def test_status_view_escapes_inputs_and_shows_tail() -> None:
    text = views.status_view(job(JobState.RUNNING), "train", ["line 1"], now=NOW).text
    assert "inputs: input=a&lt;b&gt;.txt" in text
    assert "<pre>line 1</pre>" in text


def test_a_finished_jobs_status_and_results_show_its_summary_and_scores_once() -> None:
    said = "sleap train: 2 models\nsingle_instance (val): mOKS 0.712 · dist 2.7 px"
    done = job(JobState.SUCCEEDED, finished_at=NOW, summary=said)
    for text in (
        views.status_view(done, "", [], now=NOW, quality=SCORES).text,
        views.results_view(done, SCORES).text,
    ):
        assert said in text
        assert text.count("single_instance (val)") == 1
        assert "centroid (val): not evaluated: too few frames" in text
    running = views.status_view(job(JobState.RUNNING, summary=said), "train", [], now=NOW)
    assert "sleap train" not in running.text


def test_results_view_lists_links_and_refuses_early() -> None:
    done = job(
        JobState.SUCCEEDED,
        finished_at=NOW,
        summary="ok",
        links=(Link("model", "https://drive/x", 2048), Link("log", "/r/job.log")),
    )
    text = views.results_view(done).text
    assert '<a href="https://drive/x">model</a> (2.0 KB)' in text
    assert "log: <code>/r/job.log</code>" in text
    assert "no results yet" in views.results_view(job(JobState.RUNNING)).text


def test_job_line_and_empty_list() -> None:
    line = views.job_line(job(JobState.RUNNING, progress=Progress(fraction=0.5)), NOW)
    assert line == "▶️ <b>#7</b> selftest train · running · 50% · 1m 30s"
    assert "No jobs yet" in views.jobs_view([]).text


def test_help_for_a_kind_lists_inputs_and_parameters() -> None:
    text = views.help_view("selftest", default_registry()).text
    assert "/train selftest [input] [steps=5]" in text
    assert "fail: fail halfway" in text


def test_help_for_an_unknown_topic_falls_back_to_everything() -> None:
    text = views.help_view("nonsense", default_registry()).text
    assert "No help on 'nonsense'" in text and "/train" in text


def test_long_text_does_not_fit_and_turns_plain() -> None:
    assert not views.fits("x" * 4097) and views.fits("x" * 4096)
    assert views.to_plain("<b>a</b> &amp; <pre>b</pre>") == "a & b"


def test_a_followed_run_links_to_its_page_and_an_odd_link_is_escaped() -> None:
    progress = Progress(message="epoch 1 of 2", link='https://wandb.ai/lab/p/runs/a"b<c>')
    text = views.live_status(job(JobState.RUNNING, progress=progress), now=NOW).text
    assert '<a href="https://wandb.ai/lab/p/runs/a&quot;b&lt;c&gt;">W&amp;B run</a>' in text
    foreign = Progress(message="epoch 1 of 2", link="javascript:alert(1)")
    assert "javascript" not in views.live_status(job(JobState.RUNNING, progress=foreign)).text
