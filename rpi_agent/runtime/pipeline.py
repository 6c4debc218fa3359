"""One camera's processing step: frame → detections → filters → zones → tracker → events.

No threads and no I/O: the daemon calls :meth:`Pipeline.step` for each frame on its main loop and
hands the result to the sinks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rpi_agent.config.app import DetectorConfig
from rpi_agent.config.camera import CameraConfig, FiltersConfig
from rpi_agent.detection.base import Detector
from rpi_agent.domain import Detection, FaceEvent, Frame, FrameResult
from rpi_agent.tracking.tracker import Tracker
from rpi_agent.tracking.zones import ZoneSet


def keep_detection(det: Detection, filters: FiltersConfig, min_score: float) -> bool:
    """Whether a detection passes the score and size filters (zones are checked separately)."""
    if det.score < min_score:
        return False
    return min(det.width, det.height) >= filters.min_size


class Pipeline:
    """Detector, filters, zones and tracker of one camera.

    Args:
        camera: The camera's config (filters, zones, tracker, snapshot policy).
        detector: Finds the faces of each frame (the TFLite detector, or the pass-through of a
            source that detects on its own).
        min_score: The score a face needs (:meth:`rpi_agent.config.AppConfig.min_score`); default the
            camera's ``filters.min_score``, else ``detector.threshold``'s default.

    Example:
        >>> pipe = Pipeline(CameraConfig(name="door"), FaceDetector.from_model("RFB-320"))  # doctest: +SKIP
        >>> result = pipe.step(frame)  # doctest: +SKIP
        >>> [e.type for e in result.events]  # doctest: +SKIP
    """

    def __init__(self, camera: CameraConfig, detector: Detector, *, min_score: float | None = None) -> None:
        self.camera = camera
        self.detector = detector
        own = camera.filters.min_score
        self.min_score = min_score if min_score is not None else own if own is not None else DetectorConfig().threshold
        self.zones = ZoneSet.from_config(camera.zones)
        snapshot = camera.snapshot
        self.tracker = Tracker(
            camera.tracker, camera=camera.name,
            snapshot_zones=snapshot.zones if snapshot.enabled else None,
        )
        self._detect = camera.detect
        self._required = frozenset(camera.filters.zones)
        self.last_timestamp = 0.0
        """Capture time of the latest frame stepped."""

    @property
    def detect(self) -> bool:
        """Whether detection is on."""
        return self._detect

    def set_detect(self, on: bool) -> None:
        """Switch detection on or off; while off, frames yield no faces and active faces end."""
        self._detect = bool(on)

    def step(self, frame: Frame) -> FrameResult:
        """Process one frame; the tracker runs on its capture time."""
        t0 = time.perf_counter()
        self.last_timestamp = frame.timestamp
        if not self._detect:
            events = self.tracker.end_all()
            return FrameResult(frame, (), events, {"total": (time.perf_counter() - t0) * 1e3})
        found = self.detector.detect_frame(frame)
        ms = dict(found.ms)
        t1 = time.perf_counter()
        kept, zones = self._filter(found.faces, frame.width, frame.height)
        t2 = time.perf_counter()
        out = self.tracker.update(kept, zones, now=frame.timestamp)
        t3 = time.perf_counter()
        ms.update({"filter": (t2 - t1) * 1e3, "track": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3})
        return FrameResult(frame, out.faces, out.events, ms)

    def flush(self, timestamp: float) -> FrameResult | None:
        """End every active face at shutdown, wrapped in a pixel-less frame; ``None`` if none was active.

        Args:
            timestamp: Wall-clock time put on the closing frame.
        """
        return self._wrap(self.tracker.end_all(), timestamp)

    def expire(self, timestamp: float) -> FrameResult | None:
        """End faces unseen for ``tracker.max_age_seconds`` while no frames come (source retrying).

        Call it from the main loop's housekeeping for live cameras, whose capture clock is the
        wall clock; ``None`` when nothing expired.

        Args:
            timestamp: The current time on the capture clock.
        """
        return self._wrap(self.tracker.expire(timestamp), timestamp)

    def _wrap(self, events: tuple[FaceEvent, ...], timestamp: float) -> FrameResult | None:
        if not events:
            return None
        frame = Frame(camera=self.camera.name, index=-1, timestamp=timestamp, rgb=None, width=0, height=0)
        faces = self.tracker.faces()
        return FrameResult(frame, faces, events, {})

    def _filter(
        self, detections: Sequence[Detection], width: int, height: int
    ) -> tuple[list[Detection], list[tuple[str, ...]]]:
        """Drop weak, small and (with ``filters.zones``) out-of-zone faces; zones of the rest."""
        kept: list[Detection] = []
        zones: list[tuple[str, ...]] = []
        for det in detections:
            if not keep_detection(det, self.camera.filters, self.min_score):
                continue
            names = self.zones.zones_of(det.box, width, height) if len(self.zones) else ()
            if self._required and not self._required.intersection(names):
                continue
            kept.append(det)
            zones.append(names)
        return kept, zones
