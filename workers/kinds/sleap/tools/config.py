"""sleap-nn training configs: load (YAML or SLEAP 1.4 JSON), generate, override, check.

Runs in job subprocesses only. Every config is checked by sleap-nn's own code (its structured
config classes, :mod:`workers.kinds.sleap.tools.schema`), loaded without torch; only making a
config from labels imports the rest of sleap-nn (and torch), and its results are cached
(:mod:`workers.kinds.sleap.tools.cache`). Overrides are applied to the checked config object
(whose keys and value types are sleap-nn's) and saved, so nothing reaches sleap-nn's command
line.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workers.kinds.sleap.tools import cache, schema
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
    try:
        verified = schema.verify_training_cfg(cfg)
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
    try:
        return schema.load_sleap_config(path)
    except Exception as exc:
        raise ToolError(
            f"the SLEAP 1.4 config {path.name} could not be converted: {_short(exc)}"
        ) from None


def generate_configs(
    labels_path: Path, preset: str | None, fingerprint: str = "", cache_root: Path | None = None
) -> list[DictConfig]:
    """Configs made from the labels by sleap-nn's generator (two for a top-down preset).

    With the labels' ``fingerprint`` (:func:`workers.kinds.sleap.tools.labels.fingerprint`),
    configs the generator made before for the same labels and preset are used again
    (still checked as fresh ones are), and fresh ones are kept for next time: in
    ``cache_root`` (colabot's cache folder), else in the user's (:func:`cache.default_root`).
    """
    root = (cache_root or cache.default_root()) if fingerprint else None
    tag = cache.installed_tag() if fingerprint else None
    if root is None or tag is None:
        return [_verify(cfg, "made from the labels") for cfg in _generate(labels_path, preset)]
    key = cache.generation_key(fingerprint, preset)
    path = cache.entry_path(root, tag, key)
    cached = cache.read_configs(path, key, tag)
    if cached is not None:
        reused = _reuse(cached, labels_path)
        if reused is not None:
            return reused
    made = _generate(labels_path, preset)
    verified = [_verify(cfg, "made from the labels") for cfg in made]
    cache.write_configs(path, key, tag, [_plain(cfg) for cfg in made])
    return verified


def _generate(labels_path: Path, preset: str | None) -> list[DictConfig]:
    """Run sleap-nn's generator (this imports all of sleap-nn, torch included)."""
    try:
        generator = schema.config_generator().from_slp(str(labels_path)).auto()
        if preset:
            generator.pipeline(PRESETS[preset])
        if generator.is_topdown:
            built = [generator.build_centroid(), generator.build_centered_instance()]
        else:
            built = [generator.build()]
    except Exception as exc:
        raise ToolError(f"no config could be made for these labels: {_short(exc)}") from None
    return built


def _plain(cfg: DictConfig) -> dict[str, Any]:
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(cfg, resolve=True)
    return {str(k): v for k, v in container.items()} if isinstance(container, dict) else {}


def _reuse(cached: list[dict[str, Any]], labels_path: Path) -> list[DictConfig] | None:
    """Cached generator output as the generator would make it for ``labels_path`` now
    (checked by sleap-nn); None when it no longer passes the check (made again then)."""
    from omegaconf import OmegaConf

    configs = []
    for raw in cached:
        cfg = OmegaConf.create(raw)
        # The one thing the generator takes from where the labels lie.
        OmegaConf.update(cfg, "data_config.train_labels_path", [str(labels_path.resolve())])
        try:
            configs.append(_verify(cfg, "made from the labels"))
        except ToolError:
            return None
    return configs


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
