"""Fixtures shared by every test: where the shared data and the built models are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rpi_agent.paths import REPO_ROOT, shared_dir

os.environ.setdefault("FACEAGENT_CACHE_DIR", str(REPO_ROOT / ".cache"))

# Real-Mosquitto fixtures (broker, subscribers, MQTT sinks): tests/broker_fixtures.py.
pytest_plugins = ["broker_fixtures"]


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


@pytest.fixture(scope="session")
def built_model():
    """Path of a built INT8 (or FP32) model; fails with the command that builds it."""
    from rpi_agent.paths import model_file

    def get(name: str = "RFB-320", precision: str = "int8") -> Path:
        path = model_file(name, precision)
        if not path.is_file():
            pytest.fail(f"{path} is not built: run `faceagent models build {name}` (CI does this first)")
        return path

    return get
