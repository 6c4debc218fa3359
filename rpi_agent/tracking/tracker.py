"""IoU tracker: links detections across frames into faces with stable ids, and emits events.

A face is announced (``new``) after ``min_hits`` consecutive detections and ends (``end``) after
``max_age_frames`` missed frames in a row or ``max_age_seconds`` without a detection, whichever
comes first. A candidate missed before ``min_hits`` is dropped silently. ``update`` events are sent
at once when the face's zones change or it becomes snapshot-worthy, and, rate-limited to one per
``update_interval`` seconds, when its score or top score moved by at least ``score_delta``.

Time is the frames' capture time, passed to every call: a replayed video is tracked on its own
clock, however fast it is processed, and tests drive time by hand.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rpi_agent.domain import Box, Detection, FaceEvent, Point, TrackedFace
from rpi_agent.geometry import iou_matrix, match_best_pairs
from rpi_agent.tracking.zones import merge_entered


class TrackerSettings(Protocol):
    """What the tracker reads from its settings (``[cameras.tracker]`` in the config)."""

    @property
    def min_hits(self) -> int: ...
    @property
    def max_age_frames(self) -> int: ...
    @property
    def max_age_seconds(self) -> float: ...
    @property
    def iou_threshold(self) -> float: ...
    @property
    def update_interval(self) -> float: ...
    @property
    def score_delta(self) -> float: ...


# Seeded from the OS once per process: an id per candidate track (a crowd makes dozens a frame)
# then costs no system call.
_RANDOM = random.Random(secrets.randbits(64))


def default_id(start_time: float) -> str:
    """``"<start time>-<6 random hex>"``: sortable, and unique across restarts without stored state."""
    return f"{start_time:.6f}-{_RANDOM.getrandbits(24):06x}"


@dataclass(slots=True)
class _Track:
    id: str
    box: Box
    score: float
    top_score: float
    first_seen: float
    last_seen: float
    current_zones: tuple[str, ...]
    entered_zones: tuple[str, ...]
    hits: int = 1
    misses: int = 0
    has_snapshot: bool = False
    published: TrackedFace | None = None
    published_at: float = 0.0
    landmarks: tuple[Point, ...] | None = None
    current: TrackedFace | None = None
    """The face as it is now, made when first asked for; cleared when the track changes."""

    def observe(self, det: Detection, zones: tuple[str, ...], now: float) -> None:
        self.current = None
        self.box, self.score, self.landmarks = det.box, det.score, det.landmarks
        self.top_score = max(self.top_score, det.score)
        self.last_seen = now
        self.hits += 1
        self.misses = 0
        self.current_zones = zones
        self.entered_zones = merge_entered(self.entered_zones, zones)

    def face(self, camera: str, *, end_time: float | None = None) -> TrackedFace:
        if end_time is None and self.current is not None:
            return self.current
        x1, y1, x2, y2 = self.box
        face = TrackedFace(
            id=self.id, camera=camera, box=self.box, score=self.score, top_score=self.top_score,
            area=max(0.0, x2 - x1) * max(0.0, y2 - y1), current_zones=self.current_zones,
            entered_zones=self.entered_zones, start_time=self.first_seen, end_time=end_time,
            has_snapshot=self.has_snapshot, landmarks=self.landmarks,
        )
        if end_time is None:
            self.current = face
        return face


@dataclass(frozen=True, slots=True)
class TrackerOutput:
    """What one update produced.

    Attributes:
        faces: Announced faces still active (seen this frame or coasting through misses).
        events: ``end`` events first, then ``update``, then ``new``.
    """

    faces: tuple[TrackedFace, ...]
    events: tuple[FaceEvent, ...]


class Tracker:
    """Greedy IoU tracker for one camera.

    Args:
        config: Thresholds and ages.
        camera: Camera name put into every face.
        snapshot_zones: ``None``: snapshots off; ``()``: any announced face gets one; else only
            faces inside one of these zones.
        id_factory: Makes an id from the first-seen time (default :func:`default_id`).

    Example:
        >>> t = Tracker(TrackerConfig(min_hits=1), camera="door")
        >>> [e.type for e in t.update([Detection((0, 0, 10, 10), 0.9)], now=100.0).events]
        ['new']
    """

    def __init__(
        self,
        config: TrackerSettings,
        *,
        camera: str,
        snapshot_zones: tuple[str, ...] | None = (),
        id_factory: Callable[[float], str] = default_id,
    ) -> None:
        self.config = config
        self.camera = camera
        self._snapshot_zones = snapshot_zones
        self._new_id = id_factory
        self._tracks: list[_Track] = []

    @property
    def active(self) -> int:
        """Number of announced faces not yet ended."""
        return sum(1 for t in self._tracks if t.published is not None)

    def update(
        self, detections: Sequence[Detection], zones: Sequence[tuple[str, ...]] | None = None, *, now: float
    ) -> TrackerOutput:
        """Feed one frame's detections (after filters).

        Args:
            detections: This frame's faces in frame pixels.
            zones: Zones of each detection, same order; ``None`` means no zones.
            now: The frame's capture time, seconds since the epoch.

        Returns:
            Active announced faces and the events this frame caused.
        """
        det_zones = list(zones) if zones is not None else [()] * len(detections)
        if len(det_zones) != len(detections):
            raise ValueError(f"zones has {len(det_zones)} entries for {len(detections)} detections")
        boxes = np.array([d.box for d in detections], dtype=np.float64).reshape(-1, 4)
        tracked = np.array([t.box for t in self._tracks], dtype=np.float64).reshape(-1, 4)
        pairs = match_best_pairs(iou_matrix(tracked, boxes), self.config.iou_threshold) if len(tracked) else []
        matched_tracks = {row for row, _ in pairs}
        matched_dets = {col for _, col in pairs}
        for row, col in pairs:
            self._tracks[row].observe(detections[col], tuple(det_zones[col]), now)
        ends = self._age(matched_tracks, now)
        for col, det in enumerate(detections):
            if col not in matched_dets:
                self._tracks.append(self._start(det, tuple(det_zones[col]), now))
        updates, news = self._announce(now)
        return TrackerOutput(self.faces(), tuple(ends + updates + news))

    def faces(self) -> tuple[TrackedFace, ...]:
        """Announced faces still active."""
        return tuple(t.face(self.camera) for t in self._tracks if t.published is not None)

    def end_all(self) -> tuple[FaceEvent, ...]:
        """End every face now (detection switched off, shutdown); drops candidates."""
        events = [self._end(t) for t in self._tracks if t.published is not None]
        self._tracks = []
        return tuple(events)

    def expire(self, now: float) -> tuple[FaceEvent, ...]:
        """End faces not seen for ``max_age_seconds`` without counting a frame (a source that went quiet).

        Args:
            now: The current time on the capture clock (the wall clock for a live camera).
        """
        limit = self.config.max_age_seconds
        if limit <= 0:
            return ()
        expired = [t for t in self._tracks if now - t.last_seen >= limit]
        if not expired:
            return ()
        self._tracks = [t for t in self._tracks if now - t.last_seen < limit]
        return tuple(self._end(t) for t in expired if t.published is not None)

    def _start(self, det: Detection, zones: tuple[str, ...], now: float) -> _Track:
        return _Track(
            id=self._new_id(now), box=det.box, score=det.score, top_score=det.score, first_seen=now,
            landmarks=det.landmarks,
            last_seen=now, current_zones=zones, entered_zones=merge_entered((), zones),
        )

    def _age(self, matched: set[int], now: float) -> list[FaceEvent]:
        """Count a miss for every unmatched track; drop candidates, end expired faces."""
        max_frames, max_seconds = self.config.max_age_frames, self.config.max_age_seconds
        kept: list[_Track] = []
        ends: list[FaceEvent] = []
        for index, track in enumerate(self._tracks):
            if index in matched:
                kept.append(track)
                continue
            track.misses += 1
            if track.published is None:
                continue
            if track.misses >= max_frames or (max_seconds > 0 and now - track.last_seen >= max_seconds):
                ends.append(self._end(track))
            else:
                kept.append(track)
        self._tracks = kept
        return ends

    def _end(self, track: _Track) -> FaceEvent:
        # end_time is when the face was last seen, not when the tracker gave up on it.
        after = track.face(self.camera, end_time=track.last_seen)
        before = track.published if track.published is not None else after
        return FaceEvent("end", before, after)

    def _snapshot_worthy(self, track: _Track) -> bool:
        wanted = self._snapshot_zones
        if wanted is None:
            return False
        return not wanted or any(z in wanted for z in track.current_zones)

    def _announce(self, now: float) -> tuple[list[FaceEvent], list[FaceEvent]]:
        """``new`` for candidates reaching ``min_hits``; ``update`` for significant changes."""
        updates: list[FaceEvent] = []
        news: list[FaceEvent] = []
        for track in self._tracks:
            if track.misses:
                continue
            if track.published is None:
                if track.hits >= self.config.min_hits:
                    track.has_snapshot, track.current = self._snapshot_worthy(track), None
                    face = track.face(self.camera)
                    news.append(FaceEvent("new", face, face))
                    track.published, track.published_at = face, now
                continue
            if not track.has_snapshot and self._snapshot_worthy(track):
                track.has_snapshot, track.current = True, None
            event = self._maybe_update(track, now)
            if event is not None:
                updates.append(event)
        return updates, news

    def _maybe_update(self, track: _Track, now: float) -> FaceEvent | None:
        # Compared on the track itself: a face object is made only for an update that goes out.
        before = track.published
        assert before is not None
        urgent = (
            track.current_zones != before.current_zones
            or track.entered_zones != before.entered_zones
            or track.has_snapshot != before.has_snapshot
        )
        delta = self.config.score_delta
        scored = track.top_score - before.top_score >= delta or abs(track.score - before.score) >= delta
        if delta == 0:
            scored = track.top_score != before.top_score or track.score != before.score
        due = now - track.published_at >= self.config.update_interval
        if not (urgent or (scored and due)):
            return None
        after = track.face(self.camera)
        track.published, track.published_at = after, now
        return FaceEvent("update", before, after)
