"""What the status page shows, kept as references the frame loop hands over; the work is done on request.

The frame loop calls :meth:`StatusBoard.frame` once per processed frame: it stores a reference to the
result and appends its stage timings to a short ring (no copy, no encoding). Only ``new`` events make
a small crop of the face, so the thumbnail survives the frame. Everything a viewer sees (means, JPEG
frames with boxes, thumbnails) is computed by the page's request thread from those references, so the
loop pays nothing while nobody watches.

Example:
    >>> board = StatusBoard(["door"], events=12)
    >>> board.frame(result, ms={"detect": 12.0, "sinks": 0.4})  # doctest: +SKIP
    >>> board.view()["cameras"]["door"]["faces"]  # doctest: +SKIP
    1
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rpi_agent.domain import Detection, FrameResult, TrackedFace

TIMING_WINDOW = 30
"""Frames over which the page's fps and per-stage milliseconds are averaged."""
THUMB_MARGIN = 0.3
JpegEncoder = Callable[[np.ndarray, int], bytes | None]


@dataclass(slots=True)
class EventView:
    """One event as the page lists it; ``crop`` is an RGB copy of the face for ``new`` events."""

    serial: int
    camera: str
    type: str
    face: TrackedFace
    time: float
    crop: np.ndarray | None = None
    jpeg: bytes | None = None

    def to_dict(self) -> dict[str, object]:
        return {"serial": self.serial, "camera": self.camera, "type": self.type, "id": self.face.id,
                "score": round(self.face.score, 3), "zones": list(self.face.current_zones), "time": self.time,
                "thumb": self.crop is not None}


@dataclass(slots=True)
class CameraView:
    """The latest of one camera: last result with pixels, recent timings, reported states."""

    result: FrameResult | None = None
    faces: int = 0
    frames: int = 0
    timings: deque[tuple[float, Mapping[str, float]]] = field(default_factory=lambda: deque(maxlen=TIMING_WINDOW))
    states: dict[str, str] = field(default_factory=dict)
    encoded: tuple[int, bytes] | None = None


def face_crop(rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """A copy of the face with a margin, ``(h, w, 3)`` uint8, from ``(H, W, 3)`` RGB."""
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * THUMB_MARGIN, (y2 - y1) * THUMB_MARGIN
    height, width = rgb.shape[:2]
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(width, int(x2 + mx) + 1), min(height, int(y2 + my) + 1)
    return np.array(rgb[top:max(bottom, top + 1), left:max(right, left + 1)], dtype=np.uint8)


def mean_timings(timings: Sequence[tuple[float, Mapping[str, float]]]) -> tuple[float, dict[str, float]]:
    """``(fps, {stage: mean ms})`` over a ring of ``(monotonic time, ms)``; fps 0 with fewer than two frames."""
    if not timings:
        return 0.0, {}
    totals: dict[str, float] = {}
    for _, ms in timings:
        for stage, value in ms.items():
            totals[stage] = totals.get(stage, 0.0) + value
    means = {stage: round(total / len(timings), 2) for stage, total in totals.items()}
    span = timings[-1][0] - timings[0][0]
    fps = (len(timings) - 1) / span if len(timings) > 1 and span > 0 else 0.0
    return round(fps, 2), means


class StatusBoard:
    """Latest frame, timings and states per camera, and the last events; safe across threads.

    Args:
        cameras: Camera names, in the order shown.
        events: How many recent events are kept.
        encoder: ``(rgb, quality) -> JPEG bytes``; OpenCV's by default.
        clock: Monotonic seconds, for the fps.
    """

    def __init__(self, cameras: Sequence[str], *, events: int = 12, encoder: JpegEncoder | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._cameras = {name: CameraView() for name in cameras}
        self._events: deque[EventView] = deque(maxlen=events)
        self._serial = itertools.count(1)
        self._lock = threading.Lock()
        self._encode = encoder or encode_jpeg
        self._clock = clock
        self.started = time.time()

    # -- called by the daemon -----------------------------------------------------------------
    def frame(self, result: FrameResult, *, ms: Mapping[str, float] | None = None) -> None:
        """Record one processed frame: references only, plus a face crop per ``new`` event."""
        view = self._cameras.get(result.frame.camera)
        if view is None:
            return
        with self._lock:
            if result.frame.rgb is not None:
                view.result = result
            view.faces = len(result.faces)
            if ms is not None:
                view.frames += 1
                view.timings.append((self._clock(), ms))
        if result.events:
            self._add_events(result)

    def _add_events(self, result: FrameResult) -> None:
        rgb = result.frame.rgb
        for event in result.events:
            crop = None
            if event.type == "new" and isinstance(rgb, np.ndarray) and rgb.ndim == 3:
                crop = face_crop(rgb, event.after.box)
            item = EventView(next(self._serial), result.frame.camera, event.type, event.after, time.time(), crop)
            with self._lock:
                self._events.appendleft(item)

    def state(self, camera: str, feature: str, value: str) -> None:
        """Record a reported state (``source``, ``relay``, ``detect``) of one camera."""
        view = self._cameras.get(camera)
        if view is not None:
            with self._lock:
                view.states[feature] = value

    # -- called by the page's request threads --------------------------------------------------
    def view(self) -> dict[str, object]:
        """Everything the page shows except images, as JSON-ready data."""
        with self._lock:
            cameras = {name: self._camera_dict(v) for name, v in self._cameras.items()}
            events = [e.to_dict() for e in self._events]
        return {"cameras": cameras, "events": events, "uptime": round(time.time() - self.started, 1)}

    @staticmethod
    def _camera_dict(view: CameraView) -> dict[str, object]:
        fps, ms = mean_timings(list(view.timings))
        result = view.result
        frame = result.frame if result is not None else None
        return {"fps": fps, "ms": ms, "faces": view.faces, "frames": view.frames, "states": dict(view.states),
                "frame": frame.index if frame is not None else None,
                "size": [frame.width, frame.height] if frame is not None else None,
                "boxes": [[round(v, 1) for v in f.box] + [round(f.score, 3)] for f in result.faces]
                if result is not None else []}

    def frame_jpeg(self, camera: str, *, quality: int = 75) -> bytes | None:
        """The camera's latest frame with its faces drawn, as JPEG; ``None`` if it has none.

        Encoded once per frame however many viewers ask.
        """
        view = self._cameras.get(camera)
        if view is None:
            return None
        with self._lock:
            result, cached = view.result, view.encoded
        if result is None or not isinstance(result.frame.rgb, np.ndarray):
            return None
        key = id(result)
        if cached is not None and cached[0] == key:
            return cached[1]
        jpeg = self._encode(draw(result.frame.rgb, result.faces), quality)
        if jpeg is not None:
            with self._lock:
                view.encoded = (key, jpeg)
        return jpeg

    def thumb_jpeg(self, serial: int, *, quality: int = 75) -> bytes | None:
        """The face thumbnail of one listed event, as JPEG; ``None`` if it is gone or has none."""
        with self._lock:
            item = next((e for e in self._events if e.serial == serial), None)
        if item is None or item.crop is None:
            return None
        if item.jpeg is None:
            item.jpeg = self._encode(item.crop, quality)
        return item.jpeg

    @property
    def cameras(self) -> list[str]:
        return list(self._cameras)


def draw(rgb: np.ndarray, faces: Sequence[TrackedFace]) -> np.ndarray:
    """A copy of the frame with each face's box, score and (from models that have them) landmarks drawn."""
    from rpi_agent.imaging.annotate import draw_faces

    return draw_faces(rgb, [Detection(f.box, f.score, f.landmarks) for f in faces])


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes | None:
    """``(H, W, 3)`` uint8 RGB as JPEG bytes (OpenCV), ``None`` if encoding fails."""
    import cv2

    bgr = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return buf.tobytes() if ok else None


__all__ = ["CameraView", "EventView", "StatusBoard", "encode_jpeg", "mean_timings"]
