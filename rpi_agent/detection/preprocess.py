"""Fitting an RGB frame to the network input, and mapping boxes back to the frame."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np

ResizeMode = Literal["stretch", "letterbox", "corner"]
RESIZE_MODES: tuple[str, ...] = ("stretch", "letterbox", "corner")
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

    def points_to_frame(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` ``(x, y)`` points in input pixels back to frame pixels."""
        offset = np.array([self.offset_x, self.offset_y], dtype=np.float32)
        scale = np.array([self.scale_x, self.scale_y], dtype=np.float32)
        return (points - offset) / scale


@functools.lru_cache(maxsize=8)
def _pad_canvas(height: int, width: int, pad_value: int | tuple[int, int, int]) -> np.ndarray:
    """A read-only ``(height, width, 3)`` input filled with the pad colour, to be copied per frame.

    Filling a canvas with a three-value colour is a broadcast of a 3-element row, several times the
    cost of copying a ready one (20 M instructions a 640x480 frame on a Cortex-A76, against 0.2 M).
    """
    canvas = np.full((height, width, 3), pad_value, dtype=np.uint8)
    canvas.flags.writeable = False
    return canvas


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)


def fit_to_input(rgb: np.ndarray, width: int, height: int, mode: ResizeMode,
                 pad_value: int | tuple[int, int, int] = PAD_VALUE) -> tuple[np.ndarray, Letterbox]:
    """Resize a frame to the network input.

    ``stretch`` scales each axis independently (upstream's way); ``letterbox`` keeps the aspect
    ratio and pads the rest, centred, with the value the network sees as zero; ``corner`` does
    the same with the frame in the top-left corner, so the prior grid starts where the frame
    does, as in the landmark networks' training and upstream tests.

    Args:
        rgb: ``(H, W, 3)`` uint8 RGB frame.
        width: Network input width.
        height: Network input height.
        mode: ``"stretch"``, ``"letterbox"`` or ``"corner"``.
        pad_value: Letterbox fill, one value or per RGB channel: what the network sees as zero.

    Returns:
        ``(height, width, 3)`` uint8 input and the map back to frame pixels.
    """
    frame_h, frame_w = rgb.shape[:2]
    if (frame_w, frame_h) == (width, height):
        return rgb, Letterbox(1.0, 1.0, 0.0, 0.0)
    if mode == "stretch":
        return _resize(rgb, width, height), Letterbox(width / frame_w, height / frame_h, 0.0, 0.0)
    if mode not in ("letterbox", "corner"):
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    scale = min(width / frame_w, height / frame_h)
    new_w = min(width, max(1, round(frame_w * scale)))
    new_h = min(height, max(1, round(frame_h * scale)))
    off_x, off_y = ((width - new_w) // 2, (height - new_h) // 2) if mode == "letterbox" else (0, 0)
    canvas = _pad_canvas(height, width, pad_value).copy()
    canvas[off_y : off_y + new_h, off_x : off_x + new_w] = _resize(rgb, new_w, new_h)
    return canvas, Letterbox(new_w / frame_w, new_h / frame_h, float(off_x), float(off_y))
