"""sleap-nn's own config code (its attrs config classes and checks), loaded without torch.

Any ``import sleap_nn.<module>`` first runs ``sleap_nn/__init__.py``, which imports
``sleap_nn.evaluation`` and with it torch and torchvision: about 2 s of a job's prepare
step, of which the config code needs nothing (``sleap_nn.config`` uses attrs, omegaconf,
loguru and sleap-io). So :func:`training_job_config` registers the ``sleap_nn`` package with
its ``__init__`` deferred (the real module object, ``__path__`` and all, with the one name
the config code reads from it, ``__version__``) and then imports the config modules as usual.
The checks stay sleap-nn's own; only torch stays out.

:func:`config_generator` (the rest of sleap-nn: its generator reads labels through modules
that import torch) first runs the deferred ``__init__``, so from then on sleap-nn is exactly
as a plain import leaves it. Where the package cannot be deferred (not installed the usual
way), everything falls back to plain imports.

Runs in job subprocesses only.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omegaconf import DictConfig

PACKAGE = "sleap_nn"
DISTRIBUTION = "sleap-nn"

# The spec of a ``sleap_nn`` registered by :func:`defer_init` whose ``__init__`` has not run.
_deferred: list[ModuleSpec] = []


def installed_version(distribution: str = DISTRIBUTION) -> str | None:
    """The installed version of a distribution (from its metadata: nothing is imported)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def defer_init() -> bool:
    """Register ``sleap_nn`` without running its ``__init__`` (unless it is imported already).

    True when ``sleap_nn`` was imported before or is now registered with its ``__init__``
    deferred; False when it cannot be deferred (a plain import then runs the ``__init__``
    as usual).
    """
    if PACKAGE in sys.modules:
        return True
    spec = importlib.util.find_spec(PACKAGE)
    version = installed_version()
    if (
        spec is None
        or spec.loader is None
        or spec.submodule_search_locations is None
        or version is None
    ):
        return False
    module = importlib.util.module_from_spec(spec)
    module.__dict__["__version__"] = version
    sys.modules[PACKAGE] = module
    _deferred.append(spec)
    return True


def is_deferred() -> bool:
    """Whether ``sleap_nn`` is registered with its ``__init__`` not yet run."""
    return bool(_deferred) and PACKAGE in sys.modules


def complete_init() -> ModuleType:
    """Run ``sleap_nn``'s deferred ``__init__`` (if deferred); return the package."""
    if _deferred:
        spec = _deferred.pop()
        module = sys.modules[PACKAGE]
        try:
            if spec.loader is not None:
                spec.loader.exec_module(module)
        except BaseException:
            # As a failed plain import would: no half-initialised package stays behind.
            sys.modules.pop(PACKAGE, None)
            raise
        return module
    return importlib.import_module(PACKAGE)


def training_job_config() -> ModuleType:
    """``sleap_nn.config.training_job_config``, imported without torch where possible.

    Should a sleap-nn release's config code need more of the package than its version, the
    deferred ``__init__`` is run and the config code imported again, the plain way."""
    defer_init()
    name = f"{PACKAGE}.config.training_job_config"
    try:
        return importlib.import_module(name)
    except Exception:
        if not is_deferred():
            raise
    for loaded in [n for n in sys.modules if n.startswith(f"{PACKAGE}.")]:
        del sys.modules[loaded]
    complete_init()
    return importlib.import_module(name)


def verify_training_cfg(cfg: Any) -> DictConfig:
    """sleap-nn's own check of a training config: the full structured config, or raises."""
    verified: DictConfig = training_job_config().verify_training_cfg(cfg)
    return verified


def load_sleap_config(path: Path) -> Any:
    """A SLEAP 1.4 JSON training config converted by sleap-nn's own converter."""
    return training_job_config().TrainingJobConfig.load_sleap_config(str(path))


def config_generator() -> Any:
    """sleap-nn's ``ConfigGenerator`` class (this imports all of sleap-nn, torch included)."""
    complete_init()
    return importlib.import_module(f"{PACKAGE}.config_generator.generator").ConfigGenerator
