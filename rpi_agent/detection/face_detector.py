"""One-call face detection: frame in, faces in frame pixels out."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rpi_agent.detection.decoder import DecodeOptions, postprocess
from rpi_agent.detection.preprocess import ResizeMode, fit_to_input
from rpi_agent.detection.priors import PriorSpec, generate_priors
from rpi_agent.detection.tflite import TFLiteDetector
from rpi_agent.domain import Detection
from rpi_agent.errors import ModelError
from rpi_agent.paths import PRECISIONS, model_file

DEFAULT_MODEL = "RFB-320"
DEFAULT_RESIZE: ResizeMode = "stretch"  # more accurate for the 320 models: docs/accuracy.md


@dataclass(frozen=True, slots=True)
class DetectionResult:
    """Faces found in one frame and what each stage cost.

    Attributes:
        faces: Best first, boxes in frame pixels, clipped to the frame.
        ms: Milliseconds per stage: ``preprocess``, ``inference``, ``decode``.
    """

    faces: list[Detection]
    ms: dict[str, float] = field(default_factory=dict)


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


class FaceDetector:
    """Preprocess → TFLite → decode → NMS, for frames of any size.

    Args:
        detector: The loaded network.
        resize: ``"stretch"`` or ``"letterbox"`` (aspect-preserving).
        options: Thresholds and NMS settings.
        spec: Prior layout; by default built from the model's input size.

    Example:
        >>> fd = FaceDetector.from_model("RFB-320")  # doctest: +SKIP
        >>> [f.box for f in fd.detect(rgb).faces]  # doctest: +SKIP
    """

    def __init__(
        self,
        detector: TFLiteDetector,
        *,
        resize: ResizeMode = DEFAULT_RESIZE,
        options: DecodeOptions | None = None,
        spec: PriorSpec | None = None,
    ) -> None:
        self.detector = detector
        self.resize = resize
        self.options = options or DecodeOptions()
        self.spec = spec or PriorSpec(detector.width, detector.height)
        self.priors = generate_priors(self.spec)
        # Priors in input pixels: decoding then yields pixel boxes with no extra scaling step.
        self._priors_px = self.priors * np.array([self.spec.width, self.spec.height] * 2, dtype=np.float32)
        self._checked = False

    @classmethod
    def from_model(
        cls,
        model: str | Path = DEFAULT_MODEL,
        *,
        num_threads: int = 1,
        resize: ResizeMode = DEFAULT_RESIZE,
        options: DecodeOptions | None = None,
    ) -> FaceDetector:
        """Load a model by path or built-variant name (see :func:`resolve_model`)."""
        detector = TFLiteDetector(resolve_model(model), num_threads=num_threads)
        return cls(detector, resize=resize, options=options)

    def _check_count(self, rows: int) -> None:
        if rows != self.priors.shape[0]:
            raise ModelError(
                f"{self.detector.path}: model outputs {rows} boxes but the priors for "
                f"{self.spec.width}x{self.spec.height} number {self.priors.shape[0]}"
            )
        self._checked = True

    def detect(self, rgb: np.ndarray) -> DetectionResult:
        """Find faces in one frame.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB frame of any size.

        Returns:
            Faces in frame pixels and per-stage timings.
        """
        t0 = time.perf_counter()
        net_in, mapping = fit_to_input(rgb, self.detector.width, self.detector.height, self.resize)
        t1 = time.perf_counter()
        raw = self.detector.run(net_in)
        t2 = time.perf_counter()
        if not self._checked:
            self._check_count(raw.scores.shape[0])
        boxes, scores = postprocess(
            raw.scores, raw.loc, self._priors_px, self.spec,
            score_quant=raw.score_quant, loc_quant=raw.loc_quant, options=self.options,
        )
        boxes = mapping.to_frame(boxes)
        height, width = rgb.shape[:2]
        np.clip(boxes, 0.0, np.array([width, height, width, height], dtype=np.float32), out=boxes)
        faces = [Detection(tuple(b), s) for b, s in zip(boxes.tolist(), scores.tolist(), strict=True)]
        t3 = time.perf_counter()
        ms = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3, "decode": (t3 - t2) * 1e3}
        return DetectionResult(faces, ms)
