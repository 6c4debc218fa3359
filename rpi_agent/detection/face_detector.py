"""One-call face detection: frame in, faces in frame pixels out."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from rpi_agent.detection.base import DetectionResult
from rpi_agent.detection.decoder import DecodeOptions, postprocess
from rpi_agent.detection.preprocess import ResizeMode, fit_to_input
from rpi_agent.detection.priors import PriorSpec, generate_priors
from rpi_agent.detection.tflite import TFLiteDetector
from rpi_agent.domain import Detection, Frame
from rpi_agent.errors import ModelError, SourceError
from rpi_agent.paths import resolve_model

DEFAULT_MODEL = "RFB-320"
DEFAULT_RESIZE: ResizeMode = "stretch"  # more accurate for the 320 models: docs/accuracy.md


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

    @property
    def input_size(self) -> tuple[int, int]:
        """The network's ``(width, height)``."""
        return self.detector.width, self.detector.height

    def detect_frame(self, frame: Frame) -> DetectionResult:
        """:meth:`detect` on a frame's pixels (the :class:`~rpi_agent.detection.base.Detector` seam).

        Raises:
            SourceError: The frame carries no pixels (its source detects on its own).
        """
        if frame.rgb is None:
            raise SourceError(f"camera {frame.camera}: frame {frame.index} has no pixels for the face detector")
        return self.detect(frame.rgb)

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
