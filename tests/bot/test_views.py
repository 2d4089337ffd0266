"""Pure message views."""

from __future__ import annotations

import dataclasses
from typing import Any

from bot import views
from bot.runtime import GpuInfo, MachineFacts, RuntimeClock
from workers.jobs import Action, Job, JobSpec, JobState, Link, Progress
from workers.kinds.registry import default_registry

NOW = 1_000_000.0


def job(state: JobState, **extra: Any) -> Job:
    base = Job(
        id=7,
        spec=JobSpec("selftest", Action.TRAIN, {"input": "a<b>.txt"}, {"steps": 3}),
        state=state,
        created_at=NOW - 100,
        started_at=NOW - 90 if state is not JobState.QUEUED else None,
    )
    return dataclasses.replace(base, **extra)


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
        progress=Progress(fraction=0.25, message="epoch 1 of 4", eta_s=75, metrics={"loss": 0.5}),
    )
    text = views.live_status(running, "train", now=NOW).text
    assert "running for 1m 30s · train" in text
    assert "▓▓▓░░░░░░░░░ 25%" in text
    assert "epoch 1 of 4" in text and "loss 0.5" in text and "ETA 1m 15s" in text


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


def test_runtime_view_with_and_without_gpu() -> None:
    clock = RuntimeClock(NOW - 3600, "machine start", 12 * 3600)
    facts = MachineFacts(False, 2, 10.0, 1.0, 8.0, 50.0, 100.0)
    text = views.runtime_view(facts, clock, NOW).text
    assert "GPU: none" in text and "time left: 11h 0m of 12 h" in text
    gpu = MachineFacts(
        True, 8, 5.0, 1.0, 8.0, 50.0, 100.0, gpus=[GpuInfo("Tesla T4", 1024, 15360, 40)]
    )
    assert (
        "GPU: Tesla T4, 1.0 of 15.0 GB used, 40% busy" in views.runtime_view(gpu, clock, NOW).text
    )


def test_long_text_does_not_fit_and_turns_plain() -> None:
    assert not views.fits("x" * 4097) and views.fits("x" * 4096)
    assert views.to_plain("<b>a</b> &amp; <pre>b</pre>") == "a & b"


def test_a_followed_run_links_to_its_page_and_an_odd_link_is_escaped() -> None:
    progress = Progress(message="epoch 1 of 2", link='https://wandb.ai/lab/p/runs/a"b<c>')
    text = views.live_status(job(JobState.RUNNING, progress=progress), now=NOW).text
    assert '<a href="https://wandb.ai/lab/p/runs/a&quot;b&lt;c&gt;">W&amp;B run</a>' in text
    foreign = Progress(message="epoch 1 of 2", link="javascript:alert(1)")
    assert "javascript" not in views.live_status(job(JobState.RUNNING, progress=foreign)).text
