"""The prepare step's config work without torch: sleap-nn's own checks, and the cache of
configs made from labels.

Each test runs the real tool (``python -m workers.kinds.sleap.tools prepare WORK``, through
runpy, which records ``sys.modules`` at exit) in a subprocess on real tiny data, with a cache
folder of its own (``XDG_CACHE_HOME``), and looks at whether torch was imported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from workers.kinds.plans import REQUEST, write_json
from workers.kinds.sleap.kind import STEP_ENV, TOOLS_MODULE
from workers.kinds.sleap.plan import Plan, Request, load_plan
from workers.kinds.sleap.tools import ERROR_PREFIX, cache

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[5]
# device=cpu: with device=auto, a machine with a GPU driver imports torch to look at the GPU.
EXAMPLE: dict[str, Any] = {"example": True, "device": "cpu", "infer": False}
LABELS: dict[str, Any] = {"device": "cpu", "infer": False, "example": False}
USER_CONFIG = """\
model_config:
  backbone_config:
    unet:
      filters: 8
  head_configs:
    single_instance:
      confmaps:
        sigma: 2.5
trainer_config:
  max_epochs: 5
"""


@dataclass(frozen=True)
class Prepared:
    """One run of the prepare tool."""

    code: int
    output: str
    modules: frozenset[str]
    work: Path

    @property
    def plan(self) -> Plan:
        """The plan it wrote."""
        plan = load_plan(self.work)
        assert plan is not None, self.output
        return plan

    def config_text(self, index: int = 0) -> str:
        """A planned model's config, with this job's folder written as JOB."""
        text = Path(self.plan.models[index].config).read_text()
        return text.replace(str(self.work.parent), "JOB")


# ``python -c RUN_TOOL OUT MODULE ARGS...`` runs MODULE as ``python -m MODULE ARGS...`` does,
# and at exit writes the names in sys.modules to OUT.
RUN_TOOL = """
import atexit, pathlib, runpy, sys
out, module = pathlib.Path(sys.argv.pop(1)), sys.argv.pop(1)
atexit.register(lambda: out.write_text("\\n".join(sorted(sys.modules))))
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def prepare(
    job: Path,
    cache_home: Path,
    params: dict[str, Any],
    inputs: dict[str, list[str]] | None = None,
    overrides: dict[str, str] | None = None,
) -> Prepared:
    """Write a request as the kind does and run the real prepare step on it."""
    work = job / "work"
    work.mkdir(parents=True)
    request = Request(
        action="train",
        workdir=str(job),
        inputs=inputs or {},
        params=params,
        overrides=overrides or {},
    )
    write_json(work / REQUEST, request)
    env = {**os.environ, **STEP_ENV, "XDG_CACHE_HOME": str(cache_home)}
    modules = job / "modules.txt"
    done = subprocess.run(
        [sys.executable, "-c", RUN_TOOL, str(modules), TOOLS_MODULE, "prepare", str(work)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=240,
    )
    loaded = frozenset(modules.read_text().splitlines()) if modules.is_file() else frozenset()
    assert loaded, done.stderr
    return Prepared(done.returncode, done.stdout, loaded, work)


def installed_tag() -> str:
    """The cache's folder name for the installed sleap-nn and sleap-io."""
    tag = cache.installed_tag()
    assert tag is not None
    return tag


def entries(cache_home: Path) -> list[Path]:
    """The generated-config entries in a cache folder."""
    return sorted((cache_home / cache.SUBFOLDER).glob("*/generated/*.json"))


@dataclass(frozen=True)
class Warm:
    """A cache folder the example's prepare step filled, and what that step planned."""

    home: Path
    first: Prepared


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Warm:
    """The example prepared once with an empty cache (sleap-nn's generator runs)."""
    root = tmp_path_factory.mktemp("sleap-cache")
    first = prepare(root / "job", root / "cache", EXAMPLE)
    assert first.code == 0, first.output
    return Warm(root / "cache", first)


def copy_cache(warm: Warm, dest: Path) -> Path:
    """A copy of the warm cache a test may spoil."""
    shutil.copytree(warm.home, dest)
    return dest


# ------------------------------------------------------------------------------- the example


def test_the_example_leaves_one_entry_keyed_by_the_versions(warm: Warm) -> None:
    (entry,) = entries(warm.home)
    assert entry.parent.parent.name == installed_tag()
    assert entry.parent.parent.name.startswith("sleap-nn-")
    configs = cache.read_configs(entry, entry.stem, installed_tag())
    assert configs is not None
    assert "single_instance" in configs[0]["model_config"]["head_configs"]


def test_the_cached_example_prepares_without_torch(warm: Warm, tmp_path: Path) -> None:
    again = prepare(tmp_path / "job", warm.home, EXAMPLE)
    assert again.code == 0, again.output
    assert "torch" not in again.modules
    assert "sleap_nn.config.training_job_config" in again.modules
    assert again.config_text() == warm.first.config_text()
    assert [m.head for m in again.plan.models] == ["single_instance"]
    assert len(entries(warm.home)) == 1


def test_a_mistyped_key_is_still_refused_with_its_suggestion(warm: Warm, tmp_path: Path) -> None:
    refused = prepare(
        tmp_path / "job",
        warm.home,
        EXAMPLE,
        overrides={
            "trainer_config.max_epoch": "3",
            "model_config.head_configs.centroid.confmaps.sigma": "3",
        },
    )
    assert refused.code == 2
    assert refused.output.startswith(
        ERROR_PREFIX + "unknown config keys: trainer_config.max_epoch (did you mean "
        "trainer_config.max_epochs?); model_config.head_configs.centroid.confmaps.sigma "
        "(model_config.head_configs.centroid is not used by this model)"
    ), refused.output
    assert "torch" not in refused.modules
    assert not (refused.work / "plan.json").exists()


def test_a_value_that_does_not_fit_is_still_refused(warm: Warm, tmp_path: Path) -> None:
    refused = prepare(
        tmp_path / "job", warm.home, EXAMPLE, overrides={"trainer_config.max_epochs": "many"}
    )
    assert refused.code == 2
    assert "config values that do not fit: trainer_config.max_epochs=many" in refused.output
    assert "torch" not in refused.modules


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda entry: entry.write_bytes(b'{"format": 1, "configs": [{"mo'), id="cut"),
        pytest.param(lambda entry: entry.write_bytes(b"\xff\xfe garbage"), id="garbage"),
        pytest.param(
            lambda entry: entry.write_text(
                cache.encode_entry(
                    entry.stem,
                    installed_tag(),
                    [{"model_config": {"backbone_config": {"unet": {"filterz": 8}}}}],
                )
            ),
            id="fails sleap-nn's check",
        ),
    ],
)
def test_a_spoiled_entry_is_made_again(warm: Warm, tmp_path: Path, spoil: Any) -> None:
    home = copy_cache(warm, tmp_path / "cache")
    (entry,) = entries(home)
    spoil(entry)
    again = prepare(tmp_path / "job", home, EXAMPLE)
    assert again.code == 0, again.output
    assert again.config_text() == warm.first.config_text()
    assert entries(home) == [entry]
    assert cache.read_configs(entry, entry.stem, installed_tag()) is not None
    assert not [p for p in entry.parent.iterdir() if p.name.endswith(".tmp")]
    rerun = prepare(tmp_path / "rerun", home, EXAMPLE)
    assert rerun.code == 0 and "torch" not in rerun.modules


def test_an_entry_of_other_versions_is_not_used(warm: Warm, tmp_path: Path) -> None:
    home = copy_cache(warm, tmp_path / "cache")
    (entry,) = entries(home)
    stale = cache.encode_entry(entry.stem, cache.versions_tag("0.0.1", "0.0.1"), [{"x": 1}])
    entry.write_text(stale)
    assert cache.read_configs(entry, entry.stem, installed_tag()) is None
    again = prepare(tmp_path / "job", home, EXAMPLE)
    assert again.code == 0, again.output
    assert cache.read_configs(entry, entry.stem, installed_tag()) is not None


def test_an_unwritable_cache_only_costs_time(warm: Warm, tmp_path: Path) -> None:
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder would go")
    done = prepare(tmp_path / "job", blocked, EXAMPLE)
    assert done.code == 0, done.output
    assert done.config_text() == warm.first.config_text()


# ------------------------------------------------------------------------ a person's labels


def test_labels_moved_elsewhere_find_their_configs(
    sleap_data: dict[str, Path], tmp_path: Path
) -> None:
    home = tmp_path / "cache"
    source = sleap_data["slp_mp4"].parent
    moved = tmp_path / "moved"
    shutil.copytree(source, moved)
    first = prepare(
        tmp_path / "one",
        home,
        {**LABELS, "preset": "topdown", "anchor": "thorax"},
        inputs={"input": [str(sleap_data["slp_mp4"])]},
    )
    assert first.code == 0, first.output
    assert [m.head for m in first.plan.models] == ["centroid", "centered_instance"]
    again = prepare(
        tmp_path / "two",
        home,
        {**LABELS, "preset": "topdown", "anchor": "thorax"},
        inputs={"input": [str(moved / "labels.slp")]},
    )
    assert again.code == 0, again.output
    assert "torch" not in again.modules
    for index in (0, 1):
        assert again.config_text(index) == first.config_text(index)
    other = prepare(
        tmp_path / "three",
        home,
        {**LABELS, "preset": "single_instance"},
        inputs={"input": [str(moved / "labels.slp")]},
    )
    assert other.code == 0, other.output
    assert [m.head for m in other.plan.models] == ["single_instance"]
    assert len(entries(home)) == 2


def test_a_person_s_config_is_checked_without_torch(
    sleap_data: dict[str, Path], tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(USER_CONFIG)
    inputs = {"input": [str(sleap_data["pkg"])], "config": [str(config)]}
    done = prepare(
        tmp_path / "ok",
        tmp_path / "cache",
        LABELS,
        inputs=inputs,
        overrides={"trainer_config.optimizer.lr": "0.0005", "data_config.preprocessing.scale": "1"},
    )
    assert done.code == 0, done.output
    assert "torch" not in done.modules
    text = Path(done.plan.models[0].config).read_text()
    assert "lr: 0.0005" in text and "filters: 8" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(USER_CONFIG.replace("max_epochs", "max_epocs"))
    refused = prepare(
        tmp_path / "bad",
        tmp_path / "cache",
        LABELS,
        inputs={"input": [str(sleap_data["pkg"])], "config": [str(bad)]},
    )
    assert refused.code == 2
    assert "the config bad.yaml is not a valid sleap-nn config" in refused.output
    assert "torch" not in refused.modules
    assert not entries(tmp_path / "cache")


@pytest.mark.parametrize("package", ["package", "package14"])
def test_training_packages_are_checked_without_torch(
    sleap_data: dict[str, Path], tmp_path: Path, package: str
) -> None:
    done = prepare(
        tmp_path / "job", tmp_path / "cache", LABELS, inputs={"input": [str(sleap_data[package])]}
    )
    assert done.code == 0, done.output
    assert "torch" not in done.modules
    heads = [m.head for m in done.plan.models]
    assert heads == (
        ["single_instance"] if package == "package14" else ["centroid", "centered_instance"]
    )


# ---------------------------------------------------------------------------- pure helpers


def test_the_cache_lies_under_the_user_s_cache_folder() -> None:
    home = Path("/home/someone")
    assert cache.cache_root({}, home) == home / ".cache" / "colabot" / "sleap"
    assert cache.cache_root({"XDG_CACHE_HOME": "/var/c"}, home) == Path("/var/c/colabot/sleap")
    assert cache.cache_root({"XDG_CACHE_HOME": "relative"}, home) == home / ".cache/colabot/sleap"
    assert cache.cache_root({"XDG_CACHE_HOME": "/var/c"}, None) == Path("/var/c/colabot/sleap")
    assert cache.cache_root({}, None) is None


def test_an_entry_must_be_the_one_asked_for() -> None:
    tag = cache.versions_tag("0.3.5", "0.9.5")
    configs: list[dict[str, Any]] = [{"model_config": {"head_configs": {}}}]
    text = cache.encode_entry("k", tag, configs)
    assert cache.decode_entry(text, "k", tag) == configs
    assert cache.decode_entry(text, "other", tag) is None
    assert cache.decode_entry(text, "k", cache.versions_tag("0.3.6", "0.9.5")) is None
    assert cache.decode_entry(text[:-3], "k", tag) is None
    assert cache.decode_entry("[]", "k", tag) is None
    assert cache.decode_entry(cache.encode_entry("k", tag, []), "k", tag) is None
    assert cache.decode_entry(cache.encode_entry("k", tag, [{"x": 1}]), "k", tag) is None
    assert cache.generation_key("f", None) != cache.generation_key("f", "topdown")
    assert cache.generation_key("f", None) != cache.generation_key("g", None)


def test_an_entry_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    tag = cache.versions_tag("1", "2")
    entry = cache.entry_path(tmp_path, tag, "k")
    assert cache.write_configs(entry, "k", tag, [{"model_config": {}}])
    assert cache.read_configs(entry, "k", tag) == [{"model_config": {}}]
    assert not cache.write_configs(entry, "k", tag, [{"model_config": {"x": object()}}])
    assert cache.read_configs(entry, "k", tag) == [{"model_config": {}}]
    assert sorted(p.name for p in entry.parent.iterdir()) == ["k.json"]
    (tmp_path / "file").write_text("")
    assert not cache.write_configs(tmp_path / "file" / "k.json", "k", tag, [{"model_config": {}}])


SCHEMA_STEPS = """
import sys
from workers.kinds.sleap.tools import schema
cfg = schema.verify_training_cfg(
    {"model_config": {"backbone_config": {"unet": {}}, "head_configs": {"centroid": {}}}}
)
print("verified", cfg.trainer_config.max_epochs, "torch" in sys.modules, schema.is_deferred())
generator = schema.config_generator()
import sleap_nn
print("complete", generator.__name__, "torch" in sys.modules, schema.is_deferred())
print("package", sleap_nn.__version__ == schema.installed_version(), callable(sleap_nn.load_models))
"""


def test_sleap_nn_s_init_is_deferred_and_then_run() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCHEMA_STEPS],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=240,
        check=True,
    )
    assert done.stdout.splitlines()[-3:] == [
        "verified 100 False True",
        "complete ConfigGenerator True False",
        "package True True",
    ], done.stdout + done.stderr
