"""Drawing detections onto a copy of the frame, for people to look at.

In a crowd the faces are small and close together, so a label is sized to its own face (never wider
than about its box), set on a dark strip just above the box (or below when above is taken), and left
out when neither place is free: a label never covers a face or another label, and the box is always
drawn.

Example:
    >>> annotated = draw_faces(rgb, result.faces)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rpi_agent.domain import Detection

_GREEN = (0, 200, 0)
_DARK = (20, 20, 20)
FONT_SCALE_MIN = 0.3
"""Smallest label (Hershey simplex: about 7 px of digits); a face too crowded for it gets no label."""
Rect = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Label:
    """Where one face's score goes: ``rect`` (x1, y1, x2, y2, background strip) and the text origin."""

    text: str
    rect: Rect
    origin: tuple[int, int]
    scale: float
    thickness: int


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _box_rect(face: Detection) -> Rect:
    x1, y1, x2, y2 = (round(v) for v in face.box)
    return x1, y1, x2, y2


def box_thickness(width: int, height: int) -> int:
    """Line width for boxes on a ``width`` x ``height`` image."""
    return max(1, round(min(width, height) / 400))


def layout_labels(faces: Sequence[Detection], width: int, height: int) -> list[Label | None]:
    """A label per face (``None`` where none fits), same order; no label covers a box or another label.

    Pure geometry, no drawing: the best-scoring faces are placed first.
    """
    import cv2

    boxes = [_box_rect(f) for f in faces]
    placed: list[Rect] = []
    out: list[Label | None] = [None] * len(faces)
    largest = 0.4 * box_thickness(width, height) + 0.1
    for index in sorted(range(len(faces)), key=lambda i: -faces[i].score):
        text = f"{faces[index].score:.2f}"
        x1, y1, x2, y2 = boxes[index]
        (unit_w, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)
        scale = min(largest, 1.15 * max(1, x2 - x1) / unit_w)
        scale = max(scale, FONT_SCALE_MIN)
        thickness = 1 if scale < 0.6 else 2
        (text_w, text_h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        strip_h = text_h + base + 2
        left = min(max(0, x1), max(0, width - text_w - 2))
        for top in (y1 - strip_h, y2 + 1):  # above the box, else below it
            rect = (left, top, left + text_w + 2, top + strip_h)
            if top < 0 or rect[3] > height:
                continue
            if any(_overlaps(rect, b) for b in boxes) or any(_overlaps(rect, p) for p in placed):
                continue
            placed.append(rect)
            out[index] = Label(text, rect, (left + 1, top + 1 + text_h), scale, thickness)
            break
    return out


def draw_faces(rgb: np.ndarray, faces: Sequence[Detection]) -> np.ndarray:
    """A copy of ``rgb`` ``(H, W, 3)`` uint8 with each face's box and, where it fits, its score."""
    import cv2

    out = np.ascontiguousarray(rgb.copy())
    height, width = rgb.shape[:2]
    thickness = box_thickness(width, height)
    for face in faces:
        x1, y1, x2, y2 = _box_rect(face)
        cv2.rectangle(out, (x1, y1), (x2, y2), _GREEN, thickness)
    for label in layout_labels(faces, width, height):
        if label is None:
            continue
        lx1, ly1, lx2, ly2 = label.rect
        cv2.rectangle(out, (lx1, ly1), (lx2 - 1, ly2 - 1), _DARK, cv2.FILLED)
        cv2.putText(out, label.text, label.origin, cv2.FONT_HERSHEY_SIMPLEX, label.scale, _GREEN, label.thickness,
                    cv2.LINE_AA)
    return out


def write_jpeg(path: Path, rgb: np.ndarray, *, quality: int = 90) -> None:
    """Write ``(H, W, 3)`` uint8 RGB as a JPEG, creating parent folders."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"cannot encode {path}")
    path.write_bytes(buf.tobytes())
