"""Fixtures for the job kinds' tests (the spaCy data is the session's, in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

# ----------------------------------------------------------------------------- SLEAP fixtures
# Tiny synthetic SLEAP data, written once per session by the kind's own job program
# (``sleap_tools make-data``): labels beside an mp4 or a PNG sequence, a .pkg.slp, a new
# video, labels without instances or without their video, and training packages in SLEAP 1.6
# (.yaml configs) and 1.4 (.json configs) style. sleap-io is imported only in that program.


@pytest.fixture
def sleap_inputs(sleap_data: dict[str, Path], input_root: Path) -> dict[str, Path]:
    """The SLEAP test data copied into the allowed input folder, paths by name."""
    import shutil

    source = sleap_data["pkg"].parent
    dest = input_root / "sleap"
    shutil.copytree(source, dest)
    return {name: dest / path.relative_to(source) for name, path in sleap_data.items()}


# --------------------------------------------------------------------------- end of SLEAP
