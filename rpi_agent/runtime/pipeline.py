"""One camera's processing step: frame → detections → filters → zones → tracker → events.

No threads and no I/O: the daemon calls :meth:`Pipeline.step` for each frame on its main loop and
hands the result to the sinks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rpi_agent.config.camera import CameraConfig, FiltersConfig
from rpi_agent.domain import Detection, FaceEvent, Frame, FrameResult
from rpi_agent.errors import ConfigError
from rpi_agent.tracking.tracker import Tracker
from rpi_agent.tracking.zones import ZoneSet

if TYPE_CHECKING:
    from rpi_agent.detection.face_detector import FaceDetector


def keep_detection(det: Detection, filters: FiltersConfig) -> bool:
    """Whether a detection passes the score and size filters (zones are checked separately)."""
    if det.score < filters.min_score:
        return False
    return min(det.width, det.height) >= filters.min_size


class Pipeline:
    """Detector, filters, zones and tracker of one camera.

    Args:
        camera: The camera's config (filters, zones, tracker, snapshot policy).
        detector: Runs on frames that carry pixels; ``None`` for sources that detect on their own
            (a K210 board fills ``Frame.detections``).
        clock: Seconds, read once per step by the tracker (``time.time`` in the daemon).

    Example:
        >>> pipe = Pipeline(CameraConfig(name="door"), FaceDetector.from_model("RFB-320"))  # doctest: +SKIP
        >>> result = pipe.step(frame)  # doctest: +SKIP
        >>> [e.type for e in result.events]  # doctest: +SKIP
    """

    def __init__(
        self,
        camera: CameraConfig,
        detector: FaceDetector | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.camera = camera
        self.detector = detector
        self.zones = ZoneSet.from_config(camera.zones)
        snapshot = camera.snapshot
        self.tracker = Tracker(
            camera.tracker, camera=camera.name, clock=clock,
            snapshot_zones=snapshot.zones if snapshot.enabled else None,
        )
        self._detect = camera.detect
        self._required = frozenset(camera.filters.zones)

    @property
    def detect(self) -> bool:
        """Whether detection is on."""
        return self._detect

    def set_detect(self, on: bool) -> None:
        """Switch detection on or off; while off, frames yield no faces and active faces end."""
        self._detect = bool(on)

    def step(self, frame: Frame) -> FrameResult:
        """Process one frame.

        Raises:
            ConfigError: The frame has neither pixels nor detections, or has pixels but this
                camera has no detector.
        """
        t0 = time.perf_counter()
        if not self._detect:
            events = self.tracker.end_all()
            return FrameResult(frame, (), events, {"total": (time.perf_counter() - t0) * 1e3})
        detections, ms = self._detections(frame)
        t1 = time.perf_counter()
        kept, zones = self._filter(detections, frame.width, frame.height)
        t2 = time.perf_counter()
        out = self.tracker.update(kept, zones)
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

        Call it from the main loop's housekeeping; ``None`` when nothing expired.
        """
        return self._wrap(self.tracker.expire(), timestamp)

    def _wrap(self, events: tuple[FaceEvent, ...], timestamp: float) -> FrameResult | None:
        if not events:
            return None
        frame = Frame(camera=self.camera.name, index=-1, timestamp=timestamp, rgb=None, width=0, height=0,
                      detections=())
        faces = self.tracker.faces()
        return FrameResult(frame, faces, events, {})

    def _detections(self, frame: Frame) -> tuple[Sequence[Detection], dict[str, float]]:
        if frame.detections is not None:
            return frame.detections, {}
        if frame.rgb is None:
            raise ConfigError(f"camera {self.camera.name!r}: frame {frame.index} has neither pixels nor detections")
        if self.detector is None:
            raise ConfigError(f"camera {self.camera.name!r}: the source gives images but no detector is loaded")
        result = self.detector.detect(frame.rgb)  # type: ignore[arg-type]
        return result.faces, dict(result.ms)

    def _filter(
        self, detections: Sequence[Detection], width: int, height: int
    ) -> tuple[list[Detection], list[tuple[str, ...]]]:
        """Drop weak, small and (with ``filters.zones``) out-of-zone faces; zones of the rest."""
        kept: list[Detection] = []
        zones: list[tuple[str, ...]] = []
        for det in detections:
            if not keep_detection(det, self.camera.filters):
                continue
            names = self.zones.zones_of(det.box, width, height) if len(self.zones) else ()
            if self._required and not self._required.intersection(names):
                continue
            kept.append(det)
            zones.append(names)
        return kept, zones
