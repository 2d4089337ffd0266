"""spaCy (weasel) projects: reading project.yml, choosing the workflow, checking assets and
dependencies offline, and the overrides passed to ``weasel run``.

srsly and weasel are imported only when a project.yml is read.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from workers.kinds.spacy.tools.config import describe_config_error
from workers.kinds.spacy.tools.errors import ToolError


def choose_workflow(project: Mapping[str, Any], requested: str | None) -> tuple[str, list[str]]:
    """The workflow (or single command) to run: the requested one, else ``all``, else the
    first workflow."""
    workflows: dict[str, list[str]] = dict(project.get("workflows") or {})
    commands = [str(c.get("name")) for c in project.get("commands") or []]
    if requested:
        if requested in workflows:
            chosen = requested, list(workflows[requested])
        elif requested in commands:
            chosen = requested, [requested]
        else:
            raise ToolError(
                f"workflow={requested}: project.yml has no such workflow or command "
                f"(workflows: {', '.join(workflows) or 'none'}; commands: {', '.join(commands)})"
            )
    elif "all" in workflows:
        chosen = "all", list(workflows["all"])
    elif workflows:
        first = next(iter(workflows))
        chosen = first, list(workflows[first])
    else:
        raise ToolError(
            "project.yml has no workflows; choose a command with workflow=NAME "
            f"(commands: {', '.join(commands) or 'none'})"
        )
    unknown = [c for c in chosen[1] if c not in commands]
    if unknown:
        raise ToolError(f"workflow {chosen[0]} names unknown commands: {', '.join(unknown)}")
    if not chosen[1]:
        raise ToolError(f"workflow {chosen[0]} has no commands")
    return chosen


def checksum(path: Path) -> str:
    """weasel's checksum: md5 of a file, or of a folder's files in sorted order."""
    digest = hashlib.md5()  # noqa: S324 - matches the checksums in project.yml
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        with file.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def asset_problems(assets: list[Mapping[str, Any]], root: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a project's assets: missing ones cannot be fetched offline."""
    errors: list[str] = []
    warnings: list[str] = []
    for asset in assets:
        if asset.get("extra"):
            continue
        dest = str(asset.get("dest", ""))
        path = root / dest
        if path.exists():
            expected = asset.get("checksum")
            if expected and checksum(path) != expected:
                warnings.append(f"asset {dest} does not match its checksum in project.yml")
            continue
        git = asset.get("git")
        if asset.get("url"):
            errors.append(
                f"the asset {dest} is missing and would need the internet (url: {asset['url']}); "
                f"put it at {dest} in the project folder and try again"
            )
        elif isinstance(git, Mapping):
            errors.append(
                f"the asset {dest} is missing and would need the internet (git: "
                f"{git.get('repo')} {git.get('path', '')}); put it at {dest} and try again"
            )
        else:
            errors.append(f"the asset {dest} is missing; put it at {dest} and try again")
    return errors, warnings


def missing_dependencies(project: Mapping[str, Any], chosen: list[str], root: Path) -> list[str]:
    """Dependencies of the chosen commands that do not exist and no earlier command makes."""
    commands = {str(c.get("name")): c for c in project.get("commands") or []}
    made: set[str] = set()
    problems = []
    for name in chosen:
        command = commands[name]
        for dep in command.get("deps") or []:
            if dep not in made and not (root / dep).exists():
                problems.append(f"project command {name} needs {dep}, which is missing")
        made.update(command.get("outputs") or [])
        made.update(command.get("outputs_no_cache") or [])
    return problems


def declared_outputs(project: Mapping[str, Any], chosen: list[str]) -> list[str]:
    """The outputs the chosen commands declare, in order, without repeats."""
    commands = {str(c.get("name")): c for c in project.get("commands") or []}
    found: dict[str, None] = {}
    for name in chosen:
        for key in ("outputs", "outputs_no_cache"):
            for output in commands[name].get(key) or []:
                found[str(output)] = None
    return list(found)


def load_project(root: Path, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """project.yml, validated and with its variables filled in (weasel's own rules)."""
    from weasel.schemas import ProjectConfigSchema, validate  # type: ignore[import-untyped]
    from weasel.util.config import substitute_project_variables  # type: ignore[import-untyped]

    raw = read_project_yml(root)
    errors = validate(ProjectConfigSchema, raw)
    if errors:
        raise ToolError("project.yml is not valid: " + "; ".join(errors[:3]))
    unknown = [k for k in overrides if k.split(".", 1)[1] not in (raw.get("vars") or {})]
    if unknown:
        known = ", ".join(f"vars.{v}" for v in raw.get("vars") or {}) or "none"
        raise ToolError(f"project.yml has no variable {unknown[0]} (it has: {known})")
    try:
        return dict(substitute_project_variables(raw, dict(overrides)))
    except Exception as exc:
        reason = describe_config_error(exc)
        raise ToolError(f"project.yml variables do not resolve: {reason}") from None


def read_project_yml(root: Path) -> dict[str, Any]:
    """The raw project.yml of a project folder; ToolError when it does not parse."""
    import srsly  # type: ignore[import-untyped]

    try:
        raw = srsly.read_yaml(root / "project.yml")
    except Exception as exc:
        raise ToolError(f"project.yml does not parse: {exc}") from None
    if not isinstance(raw, dict):
        raise ToolError("project.yml does not describe a project")
    return raw


def override_string(values: Iterable[tuple[str, str]]) -> str:
    """``--a.b 1 --c.d 'x y'`` for the *_CONFIG_OVERRIDES environment variables."""
    return " ".join(f"--{key} {shlex.quote(value)}" for key, value in values)
