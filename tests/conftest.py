"""Fixtures shared by every test: where the shared data and the built models are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rpi_agent.paths import REPO_ROOT, shared_dir

os.environ.setdefault("FACEAGENT_CACHE_DIR", str(REPO_ROOT / ".cache"))


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared data directory (weights, photos, WIDER FACE subset)."""
    path = shared_dir()
    if path is None:
        pytest.fail("../shared is missing: tests need the shared data beside the repository")
    return path


@pytest.fixture(scope="session")
def faces_dir(shared: Path) -> Path:
    return shared / "data" / "faces"


@pytest.fixture(scope="session")
def upstream_dir(shared: Path) -> Path:
    return shared / "models" / "upstream"
