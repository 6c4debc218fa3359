"""Where faceagent keeps derived files (weights, built models) and finds the shared data."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from rpi_agent.errors import ModelError

REPO_ROOT = Path(__file__).resolve().parent.parent

log = logging.getLogger(__name__)


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
    """A model path from a file path, ``NAME`` (INT8 build), ``NAME:fp32``, or ``auto`` (:func:`auto_model`).

    Raises:
        ModelError: Neither a file path nor a built variant, or a malformed name.
    """
    check_model_spec(model)
    if is_model_path(model):
        return Path(model).expanduser()
    model = resolve_auto(model)
    name, _, precision = str(model).partition(":")
    path = model_file(name, precision or "int8")
    if not path.is_file():
        raise ModelError(f"model {str(model)!r} is not built ({path} missing): run `faceagent models build {name}`")
    return path


AUTO_MODEL = "auto"
"""``detector.model`` default: the model chosen for the board the daemon runs on (:func:`auto_model`)."""

DEVICE_TREE_MODEL = Path("/proc/device-tree/model")
"""The board's name as its firmware gives it, e.g. ``Raspberry Pi 5 Model B Rev 1.0``."""

# Accuracy against cost per board, from docs/accuracy.md ("Which model on a Pi 4 and a Pi 5"): the
# Pi 5's Cortex-A76 runs the 640x480 RetinaFace in a few frames a second per thread, the Pi 4's A72 the
# landmark RFB at 320x240 near RFB-320's rate. Boards without a measured choice keep RFB-320.
BOARD_MODELS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Raspberry Pi (?:Compute Module )?5(?:00)?\b"), "retinaface-mnet-640"),
    (re.compile(r"Raspberry Pi (?:Compute Module )?4(?:00|S)?\b"), "RFB-landmark-320"),
)
OTHER_BOARD_MODEL = "RFB-320"


def board_name(path: Path | None = None) -> str | None:
    """The board's name from the device tree (NUL-terminated there), or ``None`` off a device-tree board."""
    try:
        text = (path or DEVICE_TREE_MODEL).read_bytes().split(b"\0", 1)[0].decode("utf-8", "replace").strip()
    except OSError:
        return None
    return text or None


def auto_model(board: str | None) -> str:
    """The model ``detector.model = "auto"`` means on ``board``.

    Example:
        >>> auto_model("Raspberry Pi 5 Model B Rev 1.0"), auto_model("Raspberry Pi 4 Model B Rev 1.4")
        ('retinaface-mnet-640', 'RFB-landmark-320')
        >>> auto_model(None)
        'RFB-320'
    """
    for pattern, model in BOARD_MODELS:
        if board and pattern.search(board):
            return model
    return OTHER_BOARD_MODEL


def resolve_auto(model: str | Path) -> str | Path:
    """``model`` itself, or for ``auto`` (optionally ``auto:fp32``) this board's model name."""
    name, sep, precision = str(model).partition(":")
    if name != AUTO_MODEL or is_model_path(model):
        return model
    board = board_name()
    chosen = auto_model(board)
    log.info("detector model auto: %s on %s", chosen, board or "a board without a device tree name")
    return f"{chosen}{sep}{precision}"
