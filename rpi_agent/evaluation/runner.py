"""Running the detector over a WIDER FACE image folder and collecting submission rows."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from rpi_agent.detection.decoder import DecodeOptions
from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.detection.preprocess import ResizeMode
from rpi_agent.errors import DatasetError, ModelError
from rpi_agent.evaluation.landmarks import FaceArrays, collect
from rpi_agent.evaluation.native import NativeSizeDetector
from rpi_agent.evaluation.submission import to_xywh, write_prediction
from rpi_agent.imaging.files import load_rgb
from rpi_agent.paths import resolve_model

log = logging.getLogger(__name__)

# Upstream's WIDER FACE settings: score > 0.1, hard NMS at IoU 0.3 over the best 800 candidates,
# at most 400 faces per image. These reproduce the reference val_dev AP (see docs/accuracy.md).
EVAL_OPTIONS = DecodeOptions(score_threshold=0.1, iou_threshold=0.3, top_k=400, candidate_size=800)
EVAL_RESIZE: ResizeMode = "stretch"
# The landmark networks' own protocol (upstream's WIDER FACE script): score > 0.02, NMS at IoU
# 0.4; its unbounded candidate list is capped at 5000, which no val_dev image reaches at 640.
LANDMARK_EVAL_OPTIONS = DecodeOptions(score_threshold=0.02, iou_threshold=0.4, top_k=-1, candidate_size=5000)
LANDMARK_EVAL_RESIZE: ResizeMode = "corner"


def eval_settings(has_landmarks: bool) -> tuple[DecodeOptions, ResizeMode]:
    """Evaluation thresholds and default resize mode of a model family (see docs/accuracy.md)."""
    return (LANDMARK_EVAL_OPTIONS, LANDMARK_EVAL_RESIZE) if has_landmarks else (EVAL_OPTIONS, EVAL_RESIZE)


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` → ``(640, 480)``.

    Raises:
        ValueError: Not ``WxH`` with positive integers.
    """
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 1 or int(height) < 1:
        raise ValueError(f"size must be WIDTHxHEIGHT such as 480x360, got {text!r}")
    return int(width), int(height)


def resolve_sized_model(model: str, size: tuple[int, int] | None) -> Path:
    """The model file for ``model`` run at ``size``.

    A built variant name (``RFB-320``, ``RFB-320:fp32``) with a size maps to the sized build
    ``RFB-320@WxH``; the plain build is used when its own input already has that size. A
    ``.tflite`` path runs at its own size only.

    Raises:
        ModelError: The sized variant is not built, or a file's input size differs.
    """
    if size is None:
        return resolve_model(model)
    candidate = Path(model)
    if candidate.suffix == ".tflite" or candidate.exists():
        return candidate
    name, _, precision = model.partition(":")
    base = name.split("@", 1)[0]
    sized = f"{base}@{size[0]}x{size[1]}" + (f":{precision}" if precision else "")
    try:
        return resolve_model(sized)
    except ModelError:
        try:
            plain = resolve_model(model)
        except ModelError:
            plain = None
        if plain is not None and _input_size(plain) == size:
            return plain
        raise


def _input_size(path: Path) -> tuple[int, int]:
    from rpi_agent.detection.tflite import TFLiteDetector

    return TFLiteDetector(path).input_size


def check_size(detector: FaceDetector, size: tuple[int, int] | None) -> None:
    """Refuse a model whose input is not the requested size."""
    actual = detector.detector.input_size
    if size is not None and actual != size:
        raise ModelError(
            f"{detector.detector.path} takes {actual[0]}x{actual[1]} input, not {size[0]}x{size[1]}: "
            f"build a sized variant (e.g. `faceagent models build RFB-320@{size[0]}x{size[1]}`)"
        )


def list_val_images(images_dir: str | Path) -> list[tuple[str, str, Path]]:
    """WIDER FACE images laid out as ``<event>/<name>.jpg``, sorted.

    Returns:
        ``(event, name, path)`` triples.

    Raises:
        DatasetError: The folder is missing or holds no such images.
    """
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise DatasetError(f"{images_dir}: image folder not found")
    found = [(p.parent.name, p.stem, p) for p in sorted(images_dir.glob("*/*.jpg")) if p.is_file()]
    if not found:
        raise DatasetError(f"{images_dir}: no images laid out as <event>/<name>.jpg")
    return found


def predict(
    detector: FaceDetector | NativeSizeDetector,
    images: list[tuple[str, str, Path]],
    *,
    out_dir: Path | None = None,
    progress: bool = True,
    landmarks: dict[tuple[str, str], FaceArrays] | None = None,
) -> dict[tuple[str, str], np.ndarray]:
    """Detect faces in every image; optionally write the submission files.

    Args:
        detector: The detector, with evaluation thresholds.
        images: From :func:`list_val_images`.
        out_dir: Write the submission files here.
        progress: Show a progress bar.
        landmarks: Filled with each image's faces that have landmarks (see ``landmarks.collect``).

    Returns:
        ``{(event, name): (P, 5) (x, y, w, h, score)}`` best score first.
    """
    from tqdm import tqdm

    preds: dict[tuple[str, str], np.ndarray] = {}
    for event, name, path in tqdm(images, desc="detect", unit="img", disable=not progress, leave=False):
        faces = detector.detect(load_rgb(path)).faces
        rows = to_xywh(faces, truncate=isinstance(detector, NativeSizeDetector))
        if landmarks is not None:
            landmarks[(event, name)] = collect(faces)
        preds[(event, name)] = rows
        if out_dir is not None:
            write_prediction(out_dir, event, name, rows)
    return preds
