"""Project-wide promises: the README's commands, the CLI, code quality, a light bot process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COLABOT = [sys.executable, "-m", "bot.cli"]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text, flags=re.S)


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    test_command = next(c for c in readme_commands() if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci.splitlines()


def test_readme_gives_a_run_command() -> None:
    assert any(c.endswith("colabot run") and "pip install" in c for c in readme_commands())


def test_help_describes_the_commands() -> None:
    out = subprocess.run([*COLABOT, "--help"], capture_output=True, text=True, check=True)
    assert "run" in out.stdout and "check" in out.stdout and "config.example.toml" in out.stdout


def test_check_accepts_the_example_and_masks_the_token(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "COLABOT_TELEGRAM_TOKEN": "123456:AAbbCCddEEffGGhhIIjjKKll",
        "HOME": str(tmp_path),
    }
    out = subprocess.run(
        [*COLABOT, "check", "--offline", "--config", str(ROOT / "config.example.toml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "configuration is valid" in out.stdout
    assert "123456:****" in out.stdout and "AAbbCC" not in out.stdout + out.stderr


def test_check_refuses_a_broken_config_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('[worker]\nmax_parallel_jobs = "two"\n')
    out = subprocess.run(
        [*COLABOT, "check", "--config", str(broken)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=ROOT,
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "config error: worker.max_parallel_jobs: must be a whole number, got 'two'"
    ]


def test_run_refuses_a_broken_config_too(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[telegram]\ntokn = 'x'\n")
    out = subprocess.run(
        [*COLABOT, "run", "--config", str(broken)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=ROOT,
    )
    assert out.returncode == 1
    assert out.stderr.strip().startswith("config error: telegram.tokn: unknown setting")


def test_the_bot_process_imports_no_framework() -> None:
    code = (
        "import sys, bot.service, bot.handlers, bot.delivery, bot.views, bot.cli\n"
        "import workers.engine, workers.kinds.registry\n"
        "workers.kinds.registry.default_registry()\n"
        "heavy = [m for m in ('torch', 'spacy', 'sleap_nn', 'sleap_io', 'thinc', 'lightning')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("tool", ["ruff", "mypy", "lint-imports"])
def test_code_quality_tools_are_clean(tool: str) -> None:
    argv = {
        "ruff": [sys.executable, "-m", "ruff", "check", "."],
        "mypy": [sys.executable, "-m", "mypy"],
        # The import contracts in pyproject.toml: which side may import what.
        "lint-imports": [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command as c; c.main(['--no-cache'])",
        ],
    }[tool]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
