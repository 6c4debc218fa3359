"""One-call face detection: frame in, faces in frame pixels out."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from rpi_agent.detection.base import DetectionResult
from rpi_agent.detection.decoder import DecodeOptions
from rpi_agent.detection.layouts import ULTRA_LIGHT, layout_for
from rpi_agent.detection.prepared import PreparedDecoder
from rpi_agent.detection.preprocess import ResizeMode, fit_to_input
from rpi_agent.detection.priors import PriorSpec, generate_priors
from rpi_agent.detection.tflite import RawOutput, TFLiteDetector
from rpi_agent.domain import Frame
from rpi_agent.errors import ModelError, SourceError
from rpi_agent.paths import resolve_model

DEFAULT_MODEL = "RFB-320"
DEFAULT_RESIZE: ResizeMode = "stretch"  # more accurate for the Ultra-Light 320 models: docs/accuracy.md
# The landmark networks were trained and tested on frames scaled keeping aspect from the top-left
# corner; so placed, they reproduce their published AP (docs/accuracy.md).
LANDMARK_RESIZE: ResizeMode = "corner"


class FaceDetector:
    """Preprocess → TFLite → decode → NMS, for frames of any size.

    Args:
        detector: The loaded network.
        resize: ``"stretch"``, ``"letterbox"`` or ``"corner"``; ``None``: the model family's
            best (:data:`DEFAULT_RESIZE`, or :data:`LANDMARK_RESIZE` for landmark models).
        options: Thresholds and NMS settings.
        spec: Prior layout; by default the one whose prior count matches the model's outputs.
        landmarks: Decode the five landmarks of each face: ``None`` when the model has them,
            ``True`` to require them (a model without is refused), ``False`` never.

    Example:
        >>> fd = FaceDetector.from_model("RFB-320")  # doctest: +SKIP
        >>> [f.box for f in fd.detect(rgb).faces]  # doctest: +SKIP
    """

    def __init__(
        self,
        detector: TFLiteDetector,
        *,
        resize: ResizeMode | None = None,
        options: DecodeOptions | None = None,
        spec: PriorSpec | None = None,
        landmarks: bool | None = None,
    ) -> None:
        self.detector = detector
        self.options = options or DecodeOptions()
        has_landmarks = getattr(detector, "has_landmarks", False)
        if landmarks and not has_landmarks:
            raise ModelError(f"{detector.path}: this model has no landmark output; use a landmark model "
                             "such as retinaface-mnet-320 or RFB-landmark-320")
        self.landmarks = has_landmarks if landmarks is None else landmarks
        self.resize: ResizeMode = resize or (LANDMARK_RESIZE if has_landmarks else DEFAULT_RESIZE)
        layout = ULTRA_LIGHT
        if spec is None:
            rows = getattr(detector, "num_rows", 0) or PriorSpec(detector.width, detector.height).count
            layout = layout_for(width=detector.width, height=detector.height, rows=rows,
                                has_landmarks=has_landmarks, label=str(detector.path))
        self.layout = layout
        self.spec = spec or layout.spec(detector.width, detector.height)
        self.priors = generate_priors(self.spec)
        # Priors in input pixels: decoding then yields pixel boxes with no extra scaling step.
        self._priors_px = self.priors * np.array([self.spec.width, self.spec.height] * 2, dtype=np.float32)
        self._decoder: PreparedDecoder | None = None

    @classmethod
    def from_model(
        cls,
        model: str | Path = DEFAULT_MODEL,
        *,
        num_threads: int = 1,
        resize: ResizeMode | None = None,
        options: DecodeOptions | None = None,
        landmarks: bool | None = None,
    ) -> FaceDetector:
        """Load a model by path or built-variant name (see :func:`resolve_model`)."""
        detector = TFLiteDetector(resolve_model(model), num_threads=num_threads)
        return cls(detector, resize=resize, options=options, landmarks=landmarks)

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

    def prepared(self, raw: RawOutput) -> PreparedDecoder:
        """The decode stage for this network's outputs, set up (and the output rows checked) once.

        Raises:
            ModelError: The model outputs another number of rows than its priors.
        """
        if self._decoder is None or self._decoder.options is not self.options:
            rows = raw.scores.shape[0]
            if rows != self.priors.shape[0]:
                raise ModelError(
                    f"{self.detector.path}: model outputs {rows} boxes but the priors for "
                    f"{self.spec.width}x{self.spec.height} number {self.priors.shape[0]}"
                )
            self._decoder = PreparedDecoder.for_output(raw, self.spec, self._priors_px, self.options)
        return self._decoder

    def detect(self, rgb: np.ndarray) -> DetectionResult:
        """Find faces in one frame.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB frame of any size.

        Returns:
            Faces in frame pixels and per-stage timings.
        """
        t0 = time.perf_counter()
        net_in, mapping = fit_to_input(rgb, self.detector.width, self.detector.height, self.resize,
                                       self.layout.pad_value)
        t1 = time.perf_counter()
        raw = self.detector.run(net_in)
        t2 = time.perf_counter()
        height, width = rgb.shape[:2]
        faces = self.prepared(raw).faces(raw, mapping, width, height, landmarks=self.landmarks)
        t3 = time.perf_counter()
        ms = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3, "decode": (t3 - t2) * 1e3}
        return DetectionResult(faces, ms)
