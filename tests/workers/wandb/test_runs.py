"""Deciding a job's W&B run, its steps' environment, and reading W&B's own lines (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.errors import SpecError
from workers.wandb.runs import (
    WandbRun,
    WandbSettings,
    offline_runs,
    run_for,
    run_page,
    run_url,
    step_env,
    sync_hint,
)

KEY = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    ("settings", "asked", "mode"),
    [
        (WandbSettings(), None, None),
        (WandbSettings(), False, None),
        (WandbSettings(), True, "offline"),
        (WandbSettings(api_key=KEY), None, "online"),
        (WandbSettings(api_key=KEY), False, None),
        (WandbSettings(api_key=KEY, mode="offline"), None, "offline"),
        (WandbSettings(api_key=KEY, mode="disabled"), None, None),
        (WandbSettings(api_key=KEY, mode="disabled"), True, "online"),
        (WandbSettings(mode="offline"), None, "offline"),
    ],
)
def test_the_mode_of_a_job(settings: WandbSettings, asked: bool | None, mode: str | None) -> None:
    run = run_for(settings, asked, "colabot-job3-spacy", available=True)
    assert (run.mode if run else None) == mode


def test_what_cannot_work_is_refused_with_the_way_out() -> None:
    with pytest.raises(SpecError, match="needs an API key") as caught:
        run_for(WandbSettings(mode="online"), None, "n", available=True)
    assert caught.value.field == "params.wandb" and "wandb=no" in caught.value.message
    with pytest.raises(SpecError, match="pip install wandb"):
        run_for(WandbSettings(), True, "n", available=False)
    assert run_for(WandbSettings(mode="online"), False, "n", available=False) is None


def test_the_key_goes_only_to_online_runs() -> None:
    settings = WandbSettings(api_key=KEY, entity="lab", base_url="http://127.0.0.1:9")
    online = step_env(WandbRun("online", "colabot", "lab", "job-1"), settings)
    assert online["WANDB_API_KEY"] == KEY and online["WANDB_ENTITY"] == "lab"
    assert online["WANDB_BASE_URL"] == "http://127.0.0.1:9" and online["WANDB_NAME"] == "job-1"
    offline = step_env(WandbRun("offline", "colabot", "", "job-1"), settings)
    assert "WANDB_API_KEY" not in offline and offline["WANDB_MODE"] == "offline"
    assert step_env(None, settings) == {"WANDB_MODE": "disabled"}


def test_the_run_page_is_read_from_wandbs_line() -> None:
    line = "wandb: 🚀 View run colabot-job3-spacy at: https://wandb.ai/lab/colabot/runs/ab12cd"
    assert run_url(line) == "https://wandb.ai/lab/colabot/runs/ab12cd"
    assert run_url("wandb: View project at: https://wandb.ai/lab/colabot") is None
    assert run_url("epoch 3 loss 0.2") is None


@pytest.mark.parametrize(
    ("base_url", "url", "shown"),
    [
        ("", "https://wandb.ai/lab/colabot/runs/ab12cd", True),
        ("https://api.wandb.ai", "https://wandb.ai/lab/colabot/runs/ab12cd", True),
        ("https://api.wandb.ai/", "https://WANDB.ai:443/lab/p/runs/1?x=1#y", True),
        ("", "http://wandb.ai/lab/colabot/runs/ab12cd", False),
        ("", "https://api.wandb.ai/lab/colabot/runs/ab12cd", False),
        ("", "https://wandb.ai.evil.example/lab/p/runs/1", False),
        ("", "https://evil.example/wandb.ai/lab/p/runs/1", False),
        ("", "https://wandb.ai@evil.example/lab/p/runs/1", False),
        ("", "https://evil.example\\@wandb.ai/lab/p/runs/1", False),
        ("", "https://evil@wandb.ai/lab/p/runs/1", False),
        ("", "https://wandb.ai:8443/lab/p/runs/1", False),
        ("", "https://wandb.ai:x/lab/p/runs/1", False),
        ("", "https://wandb.ai/lab/p/runs/1\nhttps://evil.example", False),
        ("", "https://wandb.ai/lab/p/runs/1 https://evil.example", False),
        ("", "https://wandb.ai/lab/p/runs/\u00e9", False),
        ("", "https://wandb.ai/" + "a" * 2000, False),
        ("", "javascript:alert(1)//wandb.ai", False),
        ("https://wandb.lab.example", "https://wandb.lab.example/lab/p/runs/1", True),
        ("https://wandb.lab.example", "https://wandb.ai/lab/p/runs/1", False),
        ("https://wandb.lab.example", "http://wandb.lab.example/lab/p/runs/1", False),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/lab/p/runs/1", True),
        ("http://127.0.0.1:8080", "http://127.0.0.1:9090/lab/p/runs/1", False),
        ("http://127.0.0.1:8080", "http://127.0.0.1/lab/p/runs/1", False),
        ("http://wandb.local", "https://wandb.local/lab/p/runs/1", True),
        ("not a url", "https://wandb.ai/lab/p/runs/1", False),
        ("ftp://wandb.ai", "https://wandb.ai/lab/p/runs/1", False),
    ],
)
def test_a_run_page_is_shown_only_on_the_configured_wandb_host(
    base_url: str, url: str, shown: bool
) -> None:
    assert run_page(url, base_url) == (url if shown else None)


def test_offline_runs_are_found_and_the_sync_command_names_them(tmp_path: Path) -> None:
    (tmp_path / "wandb" / "offline-run-20261201_120000-abc").mkdir(parents=True)
    (tmp_path / "models" / "m" / "wandb" / "offline-run-20261201_120100-def").mkdir(parents=True)
    (tmp_path / "wandb" / "latest-run").mkdir()
    runs = offline_runs(tmp_path)
    assert [str(p.relative_to(tmp_path)) for p in runs] == [
        "models/m/wandb/offline-run-20261201_120100-def",
        "wandb/offline-run-20261201_120000-abc",
    ]
    hint = sync_hint(runs, tmp_path)
    assert "wandb sync " in hint and "wandb/offline-run-20261201_120000-abc" in hint
