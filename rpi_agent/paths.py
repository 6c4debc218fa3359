"""Where faceagent keeps derived files (weights, built models) and finds the shared data."""

from __future__ import annotations

import os
import re
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


VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")
"""A built variant's name as the cache spells it: ``RFB-320``, ``slim-640``, ``RFB-320@480x360``."""


def is_model_path(model: str | Path) -> bool:
    """Whether ``model`` names a file (a ``.tflite`` name, a path with a ``/``) rather than a built variant.

    Raises:
        ModelError: The text can be neither (empty, a NUL, too long for the file system).
    """
    text = str(model)
    if not text.strip() or "\0" in text:
        raise ModelError(f"model {_short(text)}: expected NAME, NAME:fp32 or a path to a .tflite file")
    candidate = Path(text).expanduser()
    if candidate.suffix == ".tflite" or "/" in text:
        return True
    try:
        return candidate.exists()
    except OSError as exc:  # a name longer than the file system allows
        raise ModelError(f"model {_short(text)}: {exc.strerror or exc}") from None


def check_model_spec(model: str | Path) -> None:
    """Refuse what is neither a path nor ``NAME``, ``NAME:int8``, ``NAME:fp32``; needs no built model.

    Raises:
        ModelError: One line naming what is wrong.
    """
    if is_model_path(model):
        return
    name, sep, precision = str(model).partition(":")
    if sep and precision not in PRECISIONS:
        raise ModelError(f"model {_short(str(model))}: unknown precision {_short(precision)} "
                         f"(expected NAME, NAME:int8 or NAME:fp32, or a path to a .tflite file)")
    if not VARIANT_NAME.match(name):
        raise ModelError(f"model {_short(str(model))}: not a variant name (letters, digits, '-', '_', '.', '@') "
                         "nor a path to a .tflite file")


def _short(text: str) -> str:
    shown = repr(text)
    return f"{shown[:60]}... ({len(text)} characters)" if len(shown) > 80 else shown


def resolve_model(model: str | Path) -> Path:
    """A model path from a file path, ``NAME`` (INT8 build) or ``NAME:fp32``.

    Raises:
        ModelError: Neither a file path nor a built variant, or a malformed name.
    """
    check_model_spec(model)
    if is_model_path(model):
        return Path(model).expanduser()
    name, _, precision = str(model).partition(":")
    path = model_file(name, precision or "int8")
    if not path.is_file():
        raise ModelError(f"model {str(model)!r} is not built ({path} missing): run `faceagent models build {name}`")
    return path
