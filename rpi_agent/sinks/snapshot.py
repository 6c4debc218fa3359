"""JPEG snapshots of faces for the MQTT sink: when to take one, the encoding (Pillow), and the
worker thread that encodes them off the frame loop.

Example:
    >>> jpeg = encode_snapshot(frame, face, crop=True, quality=80)  # doctest: +SKIP
    >>> jpeg[:2]  # doctest: +SKIP
    b'\\xff\\xd8'
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections.abc import Callable, Collection

import numpy as np

from rpi_agent.config.camera import SnapshotConfig
from rpi_agent.domain import FaceEvent, Frame, FrameResult, TrackedFace

log = logging.getLogger(__name__)

NICE = 10
"""Nice value of the snapshot thread (the daemon's other threads keep theirs)."""
CROP_MARGIN = 0.4
"""Fraction of the face box added on each side when cropping, so the crop shows the head."""


def wants_snapshot(event: FaceEvent, *, zones: Collection[str]) -> bool:
    """Whether an event deserves a new snapshot.

    The tracker marks ``has_snapshot`` on faces that should have one (snapshots enabled, face in
    the snapshot zones); a snapshot goes out when that mark appears (``new``, or an ``update`` that
    sets it) and again when a better-scoring view of the face comes in.

    Args:
        event: The event.
        zones: If not empty, the face must currently be in one of them.
    """
    before, after = event.before, event.after
    if event.type == "end" or not after.has_snapshot:
        return False
    fresh = event.type == "new" or not before.has_snapshot or after.top_score > before.top_score
    return fresh and (not zones or any(z in zones for z in after.current_zones))


def _crop_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * CROP_MARGIN, (y2 - y1) * CROP_MARGIN
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(width, int(np.ceil(x2 + mx))), min(height, int(np.ceil(y2 + my)))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def encode_snapshot(frame: Frame, face: TrackedFace, *, crop: bool, quality: int) -> bytes | None:
    """Encode the frame (or the face with a margin) as JPEG.

    Uses ``frame.snapshot`` (higher resolution) when present, else ``frame.rgb``; the face box,
    given in ``frame.width`` x ``frame.height`` pixels, is scaled to the image used.

    Returns:
        JPEG bytes, or ``None`` when the frame carries no image (e.g. a K210 source).
    """
    from PIL import Image  # Pillow decodes the frames already; OpenCV's encoder would map 5 MB more

    image = frame.snapshot if frame.snapshot is not None else frame.rgb
    if image is None:
        return None
    rgb = np.asarray(image)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        return None
    if crop:
        sx, sy = rgb.shape[1] / max(1, frame.width), rgb.shape[0] / max(1, frame.height)
        x1, y1, x2, y2 = face.box
        left, top, right, bottom = _crop_box((x1 * sx, y1 * sy, x2 * sx, y2 * sy), rgb.shape[1], rgb.shape[0])
        rgb = rgb[top:bottom, left:right]
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(out, "JPEG", quality=int(quality))
    return out.getvalue()


def snapshot_request(result: FrameResult, policy: SnapshotConfig) -> TrackedFace | None:
    """The face of the last event that wants a snapshot, if any (cheap: nothing is encoded)."""
    if not policy.enabled or (result.frame.rgb is None and result.frame.snapshot is None):
        return None
    for event in reversed(result.events):
        if wants_snapshot(event, zones=policy.zones):
            return event.after
    return None


class SnapshotWorker:
    """Encodes snapshots on its own thread, so the frame loop never waits for the JPEG encoder.

    One request waits per camera. A newer one replaces it (the snapshot topic is retained: only
    the latest counts) and the replaced one is counted in ``dropped``; so is one submitted after
    :meth:`close`. A camera's request waits until ``min_interval`` seconds (its policy) after the
    camera's previous snapshot, so a crowd arriving at a fast camera costs one JPEG a second, not
    one a frame; :meth:`close` encodes what waits without waiting. Only snapshots pass here, never
    events. The frame is kept by reference, not copied: sources hand out a new array for every frame.

    Args:
        deliver: ``deliver(camera, jpeg)``, called on the worker thread.
    """

    def __init__(self, deliver: Callable[[str, bytes], None]) -> None:
        self._deliver = deliver
        self._cond = threading.Condition()
        self._waiting: dict[str, tuple[Frame, TrackedFace, SnapshotConfig]] = {}
        self._last: dict[str, float] = {}  # monotonic time of each camera's last snapshot
        self._busy = self._closed = False
        self._thread: threading.Thread | None = None
        self.encoded = 0
        self.dropped = 0
        self.failed = 0

    def submit(self, camera: str, frame: Frame, face: TrackedFace, policy: SnapshotConfig) -> None:
        """Ask for a snapshot of ``face`` in ``frame`` (any thread; returns at once)."""
        with self._cond:
            if self._closed:
                self.dropped += 1
                return
            replaced = camera in self._waiting
            if replaced:
                self.dropped += 1  # replaced by this newer one
            self._waiting[camera] = (frame, face, policy)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="snapshots", daemon=True)
                self._thread.start()
            if not replaced:
                # A replacement keeps its camera's due time, which the worker already waits for:
                # waking it for every frame of a crowd would only hand it the GIL to wait again.
                self._cond.notify_all()

    def _due_in(self, camera: str, policy: SnapshotConfig, now: float) -> float:
        """Seconds until ``camera`` may have its next snapshot (0 when due, or when closing)."""
        last = self._last.get(camera)
        if self._closed or last is None:
            return 0.0
        return max(0.0, last + policy.min_interval - now)

    def _next(self) -> tuple[str, tuple[Frame, TrackedFace, SnapshotConfig]] | None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()
            while True:
                self._cond.wait_for(lambda: self._waiting or self._closed)
                if not self._waiting:
                    return None
                now = time.monotonic()
                waits = {camera: self._due_in(camera, job[2], now) for camera, job in self._waiting.items()}
                camera = min(waits, key=waits.__getitem__)
                if waits[camera] <= 0.0:
                    break
                self._cond.wait(waits[camera])  # a newer request, or close(), may come first
            self._busy = True
            self._last[camera] = now
            return camera, self._waiting.pop(camera)

    def _run(self) -> None:
        try:
            # Linux nice value of this thread alone: on a busy CPU the frame loop and the event delivery go
            # first, and this thread falls behind (its requests replaced and counted) instead of them.
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        except (AttributeError, OSError) as exc:
            log.debug("snapshot thread keeps its priority: %s", exc)
        while (job := self._next()) is not None:
            camera, (frame, face, policy) = job
            try:
                jpeg = encode_snapshot(frame, face, crop=policy.crop, quality=policy.quality)
                if jpeg is not None:
                    self._deliver(camera, jpeg)
                    self.encoded += 1
            except Exception:  # a bad frame must not end the worker: the next snapshot may be fine
                self.failed += 1
                log.exception("camera %s: snapshot failed", camera)

    def drain(self, timeout: float) -> bool:
        """Wait until every request was encoded and delivered; returns whether that happened in time."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._waiting and not self._busy, timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Encode what waits (up to ``timeout`` s), then end the thread; idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def stats(self) -> dict[str, int]:
        """``snapshots`` encoded, ``snapshots_dropped`` (replaced by a newer one, or too late)."""
        return {"snapshots": self.encoded, "snapshots_dropped": self.dropped, "snapshot_errors": self.failed}
