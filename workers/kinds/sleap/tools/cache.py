"""The SLEAP tools' cache of configs made by sleap-nn's config generator.

Making a config from labels is quick (a tenth of a second), but sleap-nn's generator reads
the labels through modules that import torch and torchvision: about 4 s of the prepare step.
Its output depends only on what it reads from the labels (video sizes, skeleton, tracks, the
points of every instance: :func:`workers.kinds.sleap.tools.labels.fingerprint`), on the
preset asked for, and on the sleap-nn and sleap-io versions. So the configs it made are kept
under that key and used again for the same labels (``/train sleap example``: every time,
its data are always the same; a person's labels: the next run or resume on them).

Where: ``$XDG_CACHE_HOME/colabot/sleap`` (``~/.cache/colabot/sleap`` without it), one folder
per sleap-nn and sleap-io version (``sleap-nn-0.3.5.sleap-io-0.9.5``), one JSON file per key.
An entry that cannot be read, is not what this code writes, or names other versions or
another key is ignored and made again; entries are written atomically (a temporary file in
the same folder, then renamed), and a cache that cannot be written only costs time. What
is read back still goes through sleap-nn's own config check, as a fresh config does.

Runs in job subprocesses only (no framework imports here).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workers.kinds.sleap.tools.schema import installed_version

# Bump when what is stored, or how the tools call the generator, changes.
FORMAT = 1
SUBFOLDER = Path("colabot") / "sleap"


def cache_root(env: Mapping[str, str], home: Path | None) -> Path | None:
    """The tools' cache folder: under ``$XDG_CACHE_HOME`` if it is absolute, else under
    ``~/.cache``; None with neither (no home)."""
    base = env.get("XDG_CACHE_HOME", "")
    if base and Path(base).is_absolute():
        return Path(base) / SUBFOLDER
    return home / ".cache" / SUBFOLDER if home is not None else None


def default_root() -> Path | None:
    """This process's cache folder (see :func:`cache_root`)."""
    try:
        home: Path | None = Path.home()
    except RuntimeError:
        home = None
    return cache_root(os.environ, home)


def versions_tag(sleap_nn: str, sleap_io: str) -> str:
    """``sleap-nn-0.3.5.sleap-io-0.9.5``: the folder of one pair of installed versions."""
    return f"sleap-nn-{sleap_nn}.sleap-io-{sleap_io}"


def installed_tag() -> str | None:
    """The versions tag of the installed sleap-nn and sleap-io; None when either version is
    unknown (then nothing is cached: an entry could outlive the code that made it)."""
    sleap_nn, sleap_io = installed_version("sleap-nn"), installed_version("sleap-io")
    return versions_tag(sleap_nn, sleap_io) if sleap_nn and sleap_io else None


def generation_key(fingerprint: str, preset: str | None) -> str:
    """The key of the configs the generator makes for these labels and this preset."""
    text = json.dumps({"format": FORMAT, "labels": fingerprint, "preset": preset})
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def entry_path(root: Path, tag: str, key: str) -> Path:
    """Where the entry of ``key`` lives."""
    return root / tag / "generated" / f"{key}.json"


def encode_entry(key: str, tag: str, configs: list[dict[str, Any]]) -> str:
    """An entry's text."""
    return json.dumps({"format": FORMAT, "versions": tag, "key": key, "configs": configs})


def decode_entry(text: str, key: str, tag: str) -> list[dict[str, Any]] | None:
    """The configs an entry holds, or None when it is not a sound entry for ``key``."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if data.get("format") != FORMAT or data.get("versions") != tag or data.get("key") != key:
        return None
    configs = data.get("configs")
    if not isinstance(configs, list) or not configs:
        return None
    if not all(isinstance(c, dict) and "model_config" in c for c in configs):
        return None
    return configs


def read_configs(path: Path, key: str, tag: str) -> list[dict[str, Any]] | None:
    """The configs cached at ``path`` for ``key``; None when there is no sound entry."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return decode_entry(text, key, tag)


def write_configs(path: Path, key: str, tag: str, configs: list[dict[str, Any]]) -> bool:
    """Store an entry atomically; False (and nothing left behind) when it cannot be written."""
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(encode_entry(key, tag, configs))
        tmp.replace(path)
    except (OSError, TypeError, ValueError):
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return False
    return True
