"""The detector seam: a frame goes in, faces in frame pixels come out.

The pipeline sees only :class:`Detector`; the daemon picks the implementation per camera: the
TFLite :class:`~rpi_agent.detection.face_detector.FaceDetector` for sources with pixels, or
:class:`ReportedFaces` for a source that detects on its own (a K210 board).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from rpi_agent.domain import Detection, Frame


@dataclass(frozen=True, slots=True)
class DetectionResult:
    """Faces found in one frame and what each stage cost.

    Attributes:
        faces: Best first, boxes in frame pixels, clipped to the frame.
        ms: Milliseconds per stage (``preprocess``, ``inference``, ``decode`` for the TFLite detector).
    """

    faces: list[Detection]
    ms: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Detector(Protocol):
    """Finds faces in frames."""

    @property
    def input_size(self) -> tuple[int, int] | None:
        """``(width, height)`` the network wants (a camera's low-resolution stream size), if any."""
        ...

    def detect_frame(self, frame: Frame) -> DetectionResult:
        """Faces of one frame, in its pixels."""
        ...


class ReportedFaces:
    """Pass-through for a source that finds faces itself: returns what the frame reports.

    Example:
        >>> ReportedFaces().detect_frame(Frame("k210", 0, 0.0, None, 320, 240, reported=())).faces
        []
    """

    input_size = None

    def detect_frame(self, frame: Frame) -> DetectionResult:
        return DetectionResult(list(frame.reported))
