"""The textbook greedy NMS, the reference the decoder's NMS paths are checked against."""

from __future__ import annotations

import numpy as np

from rpi_agent.geometry import iou_outer


def greedy_reference(boxes: np.ndarray, iou: float, top_k: int = -1) -> list[int]:
    """Indices kept by greedy NMS over the full IoU matrix: keep a box unless a kept one overlaps it.

    Args:
        boxes: ``(K, 4)`` xyxy boxes, best first.
        iou: Overlap above which a box is suppressed.
        top_k: At most this many kept (``<= 0``: all).
    """
    overlaps = iou_outer(boxes) > iou
    keep: list[int] = []
    for i in range(boxes.shape[0]):
        if not any(overlaps[k, i] for k in keep):
            keep.append(i)
    return keep[:top_k] if top_k > 0 else keep
