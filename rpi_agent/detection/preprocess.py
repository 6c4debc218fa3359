"""Fitting an RGB frame to the network input, and mapping boxes back to the frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

ResizeMode = Literal["stretch", "letterbox"]
RESIZE_MODES: tuple[str, ...] = ("stretch", "letterbox")
# Pixel value that the network's normalisation maps to (about) zero.
PAD_VALUE = 127


@dataclass(frozen=True, slots=True)
class Letterbox:
    """Affine map from frame pixels to network-input pixels: ``input = frame * scale + offset``."""

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """Map ``(M, 4)`` xyxy boxes in input pixels back to frame pixels."""
        offset = np.array([self.offset_x, self.offset_y] * 2, dtype=np.float32)
        scale = np.array([self.scale_x, self.scale_y] * 2, dtype=np.float32)
        return (boxes - offset) / scale


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)


def fit_to_input(rgb: np.ndarray, width: int, height: int, mode: ResizeMode) -> tuple[np.ndarray, Letterbox]:
    """Resize a frame to the network input.

    ``stretch`` scales each axis independently (upstream's way); ``letterbox`` keeps the aspect
    ratio and pads the rest, centred, with the value the network sees as zero.

    Args:
        rgb: ``(H, W, 3)`` uint8 RGB frame.
        width: Network input width.
        height: Network input height.
        mode: ``"stretch"`` or ``"letterbox"``.

    Returns:
        ``(height, width, 3)`` uint8 input and the map back to frame pixels.
    """
    frame_h, frame_w = rgb.shape[:2]
    if (frame_w, frame_h) == (width, height):
        return rgb, Letterbox(1.0, 1.0, 0.0, 0.0)
    if mode == "stretch":
        return _resize(rgb, width, height), Letterbox(width / frame_w, height / frame_h, 0.0, 0.0)
    if mode != "letterbox":
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    scale = min(width / frame_w, height / frame_h)
    new_w = min(width, max(1, round(frame_w * scale)))
    new_h = min(height, max(1, round(frame_h * scale)))
    off_x, off_y = (width - new_w) // 2, (height - new_h) // 2
    canvas = np.full((height, width, 3), PAD_VALUE, dtype=np.uint8)
    canvas[off_y : off_y + new_h, off_x : off_x + new_w] = _resize(rgb, new_w, new_h)
    return canvas, Letterbox(new_w / frame_w, new_h / frame_h, float(off_x), float(off_y))
