"""sleap-nn training configs: load (YAML or SLEAP 1.4 JSON), generate, override, check.

Runs in job subprocesses only (it imports sleap-nn, which imports torch). Overrides are
applied to the config object and saved, so nothing reaches sleap-nn's command line.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workers.kinds.sleap.tools.errors import ToolError

if TYPE_CHECKING:
    from omegaconf import DictConfig

# ``preset=`` -> the config generator's pipeline (and whether it makes a top-down pair).
PRESETS: dict[str, str] = {
    "single_instance": "single_instance",
    "centroid": "centroid_only",
    "topdown": "centroid",
    "bottomup": "bottomup",
    "multi_class_bottomup": "multi_class_bottomup",
    "multi_class_topdown": "multi_class_topdown",
}
ANCHORED_HEADS = ("centroid", "centered_instance", "multi_class_topdown")

# Chat-friendly defaults: no picture or wandb work nobody sees, and no progress bar flooding
# the log (progress comes from training_log.csv). An override of the same key wins.
QUIET_DEFAULTS: dict[str, Any] = {
    "trainer_config.visualize_preds_during_training": False,
    "trainer_config.enable_progress_bar": False,
    "trainer_config.use_wandb": False,
}


def _verify(cfg: Any, name: str) -> DictConfig:
    from sleap_nn.config.training_job_config import verify_training_cfg

    try:
        verified: DictConfig = verify_training_cfg(cfg)
    except Exception as exc:
        raise ToolError(
            f"the config {name} is not a valid sleap-nn config: {_short(exc)}"
        ) from None
    return verified


def _short(exc: Exception) -> str:
    """The first line of an exception, with its type when the message alone is vague."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def load_config(path: Path) -> DictConfig:
    """A config file as a checked sleap-nn config: YAML, sleap-nn JSON or SLEAP 1.4 JSON."""
    from omegaconf import OmegaConf

    if not path.is_file():
        raise ToolError(f"the config file {path.name} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        try:
            raw: Any = OmegaConf.load(path)
        except Exception as exc:
            raise ToolError(f"the config {path.name} is not valid YAML: {_short(exc)}") from None
        if not isinstance(raw, Mapping) or "model_config" not in raw:
            raise ToolError(f"the config {path.name} has no model_config section")
        return _verify(raw, path.name)
    if suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ToolError(f"the config {path.name} is not valid JSON: {exc}") from None
        if isinstance(data, dict) and "model_config" in data:
            return _verify(OmegaConf.create(data), path.name)
        return _verify(_legacy(path), path.name)
    raise ToolError(f"the config {path.name} must be a .yaml file or a SLEAP .json config")


def _legacy(path: Path) -> Any:
    """Convert a SLEAP 1.4 training config (JSON) with sleap-nn's own converter."""
    from sleap_nn.config.training_job_config import TrainingJobConfig

    try:
        return TrainingJobConfig.load_sleap_config(str(path))
    except Exception as exc:
        raise ToolError(
            f"the SLEAP 1.4 config {path.name} could not be converted: {_short(exc)}"
        ) from None


def generate_configs(labels_path: Path, preset: str | None) -> list[DictConfig]:
    """Configs made from the labels by sleap-nn's generator (two for a top-down preset)."""
    from sleap_nn.config_generator.generator import ConfigGenerator

    try:
        generator = ConfigGenerator.from_slp(str(labels_path)).auto()
        if preset:
            generator.pipeline(PRESETS[preset])
        if generator.is_topdown:
            built = [generator.build_centroid(), generator.build_centered_instance()]
        else:
            built = [generator.build()]
    except Exception as exc:
        raise ToolError(f"no config could be made for these labels: {_short(exc)}") from None
    return [_verify(cfg, "made from the labels") for cfg in built]


def head_of(cfg: DictConfig) -> str:
    """The model type a config trains (its one head that is set)."""
    heads = [name for name, value in cfg.model_config.head_configs.items() if value is not None]
    return str(heads[0]) if heads else "model"


# ---------------------------------------------------------------------------------- overrides


def parse_value(text: str) -> Any:
    """A chat value as YAML: ``0.001`` -> 0.001, ``true`` -> True, ``[1,2]`` -> [1, 2]."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _leaf_keys(node: Any, prefix: str = "") -> Iterator[str]:
    from omegaconf import DictConfig

    if not isinstance(node, DictConfig):
        return
    for key, value in node.items():
        full = f"{prefix}.{key!s}" if prefix else str(key)
        if isinstance(value, DictConfig):
            yield from _leaf_keys(value, full)
        else:
            yield full


@dataclass(frozen=True)
class KeyCheck:
    """Where a dotted key stands in one config: ``ok``, ``unknown`` or ``unused``."""

    state: str
    at: str = ""


def locate(cfg: DictConfig, key: str) -> KeyCheck:
    """Whether ``key`` names a setting of ``cfg``; ``unused`` when it lies under a part of
    the schema this config does not use (a head of another model type, say)."""
    from omegaconf import DictConfig

    node: Any = cfg
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if node is None:
            return KeyCheck("unused", ".".join(parts[:depth]))
        if not isinstance(node, DictConfig) or part not in node:
            return KeyCheck("unknown", ".".join(parts[: depth + 1]))
        node = node[part]
    return KeyCheck("ok")


def suggest(cfg: DictConfig, key: str) -> str:
    """`` (did you mean x.y?)`` for a mistyped key, or ''."""
    close = difflib.get_close_matches(key, list(_leaf_keys(cfg)), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def apply_overrides(configs: Sequence[DictConfig], overrides: Mapping[str, str]) -> list[str]:
    """Set every ``key: value`` in each config that uses the key; raise ToolError naming
    the keys that no config knows and the values that do not fit.

    Returns the keys that were set.
    """
    from omegaconf import OmegaConf

    unknown: list[str] = []
    bad: list[str] = []
    for key, raw in overrides.items():
        checks = [locate(cfg, key) for cfg in configs]
        targets = [cfg for cfg, check in zip(configs, checks, strict=True) if check.state == "ok"]
        if not targets:
            unused = next((c for c in checks if c.state == "unused"), None)
            if unused is not None:
                unknown.append(f"{key} ({unused.at} is not used by this model)")
            else:
                unknown.append(key + suggest(configs[0], key))
            continue
        value = parse_value(raw)
        for cfg in targets:
            try:
                OmegaConf.update(cfg, key, value, merge=True)
            except Exception as exc:
                bad.append(f"{key}={raw}: {_short(exc)}")
                break
    if unknown:
        raise ToolError("unknown config keys: " + "; ".join(unknown))
    if bad:
        raise ToolError("config values that do not fit: " + "; ".join(bad))
    return list(overrides)


def set_key(cfg: DictConfig, key: str, value: Any) -> None:
    """Set a key colabot controls (it exists in every sleap-nn config)."""
    from omegaconf import OmegaConf

    OmegaConf.update(cfg, key, value, merge=True)


def set_anchor(configs: Sequence[DictConfig], anchor: str, nodes: Sequence[str]) -> None:
    """Use ``anchor`` as the anchor part of every top-down head; it must be a node."""
    if nodes and anchor not in nodes:
        raise ToolError(f"anchor={anchor} is not a node of the skeleton ({', '.join(nodes)})")
    for cfg in configs:
        for head in ANCHORED_HEADS:
            section = cfg.model_config.head_configs.get(head)
            if section is not None and section.get("confmaps") is not None:
                section.confmaps.anchor_part = anchor


def check_anchors(cfg: DictConfig, nodes: Sequence[str]) -> None:
    """Refuse a config whose anchor part is not a node of the labels' skeleton."""
    for head in ANCHORED_HEADS:
        section = cfg.model_config.head_configs.get(head)
        anchor = section.confmaps.get("anchor_part") if section and section.confmaps else None
        if anchor and nodes and anchor not in nodes:
            raise ToolError(
                f"the {head} model's anchor part {anchor!r} is not a node of the skeleton "
                f"({', '.join(nodes)}); set anchor=<node>"
            )


def save_config(cfg: DictConfig, path: Path) -> Path:
    """Write a config as YAML (what ``sleap-nn train`` reads)."""
    from omegaconf import OmegaConf

    path.parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, path)
    return path


def read_seed(training_config: Path) -> int | None:
    """The seed a finished or interrupted run used (from its training_config.yaml)."""
    from omegaconf import OmegaConf

    try:
        seed = OmegaConf.select(OmegaConf.load(training_config), "trainer_config.seed")
    except Exception:
        return None
    return int(seed) if isinstance(seed, int) else None
