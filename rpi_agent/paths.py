"""Where faceagent keeps derived files (weights, built models) and finds the shared data."""

from __future__ import annotations

import os
from pathlib import Path

from rpi_agent.errors import ModelError

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Root of the cache: ``$FACEAGENT_CACHE_DIR``, else ``$XDG_CACHE_HOME/faceagent``, else ``~/.cache/faceagent``."""
    env = os.environ.get("FACEAGENT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "faceagent"


def models_dir() -> Path:
    """Directory holding one sub-directory per built model variant."""
    return cache_dir() / "models"


def weights_dir() -> Path:
    """Directory holding the verified pretrained weights."""
    return cache_dir() / "weights"


def shared_dir() -> Path | None:
    """The shared data checkout (``$FACEAGENT_SHARED_DIR`` or ``../shared`` beside the repo), if present."""
    env = os.environ.get("FACEAGENT_SHARED_DIR")
    candidate = Path(env).expanduser() if env else REPO_ROOT.parent / "shared"
    return candidate if candidate.is_dir() else None


PRECISIONS = ("int8", "fp32")


def model_file(name: str, precision: str = "int8") -> Path:
    """Path of a built model variant: ``model_file("RFB-320")`` is ``<cache>/models/RFB-320/RFB-320-int8.tflite``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return models_dir() / name / f"{name}-{precision}.tflite"


def resolve_model(model: str | Path) -> Path:
    """A model path from a file path, ``NAME`` (INT8 build) or ``NAME:fp32``.

    Raises:
        ModelError: Neither an existing file nor a built variant.
    """
    candidate = Path(model)
    if candidate.suffix == ".tflite" or candidate.exists():
        return candidate
    name, _, precision = str(model).partition(":")
    path = model_file(name, precision or "int8")
    if not path.is_file():
        raise ModelError(f"model {model!r} is not built ({path} missing): run `faceagent models build {name}`")
    return path
