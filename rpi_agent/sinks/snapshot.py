"""JPEG snapshots of faces for the MQTT sink: when to take one, and the encoding (OpenCV).

Example:
    >>> jpeg = encode_snapshot(frame, face, crop=True, quality=80)  # doctest: +SKIP
    >>> jpeg[:2]  # doctest: +SKIP
    b'\\xff\\xd8'
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from rpi_agent.config.camera import SnapshotConfig
from rpi_agent.domain import FaceEvent, Frame, FrameResult, TrackedFace

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
    import cv2

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
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return buf.tobytes() if ok else None


def snapshot_for(result: FrameResult, policy: SnapshotConfig) -> bytes | None:
    """The JPEG to publish for this frame, if any: for the last event that wants one."""
    if not policy.enabled:
        return None
    for event in reversed(result.events):
        if wants_snapshot(event, zones=policy.zones):
            return encode_snapshot(result.frame, event.after, crop=policy.crop, quality=policy.quality)
    return None
