"""Plain data passed between stages: immutable, no behaviour beyond geometry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

Box = tuple[float, float, float, float]
"""Pixel box ``(x1, y1, x2, y2)``, x to the right, y down, in the frame's own pixels."""
Point = tuple[float, float]
"""Pixel point ``(x, y)`` in the frame's own pixels."""
LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
"""The five landmarks in order (left/right as they appear in the image)."""


class Detection(NamedTuple):
    """One face found in one frame.

    A named tuple rather than a frozen dataclass: a crowd's hundreds of faces are then made in C
    from the decoder's columns (``tuple.__new__``), about half the cost of filling slots.

    Attributes:
        box: ``(x1, y1, x2, y2)`` in pixels of the frame the detector was given.
        score: Face confidence in [0, 1].
        landmarks: Five ``(x, y)`` points in frame pixels, in :data:`LANDMARK_NAMES` order, from
            models that predict them; ``None`` otherwise.

    Example:
        >>> Detection((10.0, 20.0, 50.0, 70.0), 0.93).area
        2000.0
    """

    box: Box
    score: float
    landmarks: tuple[Point, ...] | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One frame from a source: what a detector looks at.

    Attributes:
        camera: Name of the camera it came from (config ``[[cameras]] name``).
        index: Frame number from the source, starting at 0.
        timestamp: Capture time, seconds since the epoch: the wall clock of a live camera, the
            media time of a recording (counted from when playback began). The tracker runs on it.
        rgb: ``(height, width, 3)`` uint8 RGB pixels; ``None`` from a source that sends no pixels
            (a K210 board reports its faces in ``reported`` instead).
        width: Frame width in pixels (the coordinate space of boxes).
        height: Frame height in pixels.
        reported: Faces the source found itself (a K210 board); what the pass-through detector
            returns.
        snapshot: Optional higher-resolution ``(H, W, 3)`` uint8 RGB image of the same instant
            (picamera2 ``main`` stream), for snapshots; boxes are scaled to it.
    """

    camera: str
    index: int
    timestamp: float
    rgb: NDArray[np.uint8] | None
    width: int
    height: int
    reported: tuple[Detection, ...] = ()
    snapshot: NDArray[np.uint8] | None = None


@dataclass(frozen=True, slots=True)
class TrackedFace:
    """A face followed across frames, as published (Frigate's event object shape).

    Attributes:
        id: Stable id from ``new`` to ``end``, unique across restarts (e.g. ``"<start>-<rand>"``).
        camera: Camera name.
        box: Latest pixel xyxy box.
        score: Latest score.
        top_score: Best score seen so far.
        area: Box area in pixels.
        current_zones: Zones the face is in now.
        entered_zones: Zones it has been in since ``new``, in order of entry.
        start_time: Wall-clock time of the first detection.
        end_time: Wall-clock time it ended, ``None`` while active.
        has_snapshot: Whether a snapshot was published for it.
        landmarks: Latest five landmark points in frame pixels, from models that predict them.
    """

    id: str
    camera: str
    box: Box
    score: float
    top_score: float
    area: float
    current_zones: tuple[str, ...] = ()
    entered_zones: tuple[str, ...] = ()
    start_time: float = 0.0
    end_time: float | None = None
    has_snapshot: bool = False
    landmarks: tuple[Point, ...] | None = None

    def to_dict(self) -> dict[str, object]:
        extra: dict[str, object] = {}
        if self.landmarks is not None:
            extra["landmarks"] = [[round(x), round(y)] for x, y in self.landmarks]
        return {
            "id": self.id,
            "camera": self.camera,
            "label": "face",
            "score": round(self.score, 4),
            "top_score": round(self.top_score, 4),
            "box": [round(v, 1) for v in self.box],
            "area": round(self.area),
            "current_zones": list(self.current_zones),
            "entered_zones": list(self.entered_zones),
            "start_time": self.start_time,
            "end_time": self.end_time,
            "has_snapshot": self.has_snapshot,
            **extra,
        }


@dataclass(frozen=True, slots=True)
class FaceEvent:
    """A change in a tracked face: ``new``, ``update`` or ``end`` (Frigate's ``events`` payload)."""

    type: str
    before: TrackedFace
    after: TrackedFace

    def to_dict(self) -> dict[str, object]:
        return {"type": self.type, "before": self.before.to_dict(), "after": self.after.to_dict()}


@dataclass(frozen=True, slots=True, eq=False)
class FrameResult:
    """Everything one pipeline step produced for one frame; what sinks consume.

    Attributes:
        frame: The frame.
        faces: Confirmed faces present in this frame (after filters), with zones.
        events: Events this frame caused (new/update/end), in order.
        ms: Milliseconds per stage for stats.
    """

    frame: Frame
    faces: tuple[TrackedFace, ...]
    events: tuple[FaceEvent, ...]
    ms: dict[str, float]
