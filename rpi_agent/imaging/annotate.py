"""Drawing detections onto a copy of the frame, for people to look at."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rpi_agent.domain import Detection

_GREEN = (0, 200, 0)


def draw_faces(rgb: np.ndarray, faces: list[Detection]) -> np.ndarray:
    """A copy of ``rgb`` ``(H, W, 3)`` uint8 with each face's box and score drawn on it."""
    import cv2

    out = np.ascontiguousarray(rgb.copy())
    thickness = max(1, round(min(rgb.shape[:2]) / 300))
    for face in faces:
        x1, y1, x2, y2 = (round(v) for v in face.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), _GREEN, thickness)
        cv2.putText(out, f"face {face.score:.2f}", (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thickness, _GREEN, thickness, cv2.LINE_AA)
    return out


def write_jpeg(path: Path, rgb: np.ndarray, *, quality: int = 90) -> None:
    """Write ``(H, W, 3)`` uint8 RGB as a JPEG, creating parent folders."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"cannot encode {path}")
    path.write_bytes(buf.tobytes())
