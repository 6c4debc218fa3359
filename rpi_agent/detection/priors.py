"""SSD prior (anchor) boxes of the Ultra-Light detector, for any input size."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_MIN_BOXES: tuple[tuple[int, ...], ...] = ((10, 16, 24), (32, 48), (64, 96), (128, 192, 256))
DEFAULT_STRIDES: tuple[int, ...] = (8, 16, 32, 64)


@dataclass(frozen=True, slots=True)
class PriorSpec:
    """How the priors of one network input size are laid out.

    Attributes:
        width: Network input width in pixels.
        height: Network input height in pixels.
        min_boxes: Prior side lengths in input pixels, one tuple per feature map.
        strides: Feature-map stride in pixels, one per feature map.
        center_variance: Scale of the centre offsets in the box regression.
        size_variance: Scale of the log-size offsets in the box regression.

    Example:
        >>> generate_priors(PriorSpec(320, 240)).shape
        (4420, 4)
    """

    width: int
    height: int
    min_boxes: tuple[tuple[int, ...], ...] = DEFAULT_MIN_BOXES
    strides: tuple[int, ...] = DEFAULT_STRIDES
    center_variance: float = 0.1
    size_variance: float = 0.2

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"prior input size must be positive, got {self.width}x{self.height}")
        if len(self.min_boxes) != len(self.strides):
            raise ValueError("min_boxes and strides must have one entry per feature map")

    @property
    def feature_maps(self) -> list[tuple[int, int]]:
        """``(width, height)`` of each feature map: ``ceil(size / stride)``."""
        return [(math.ceil(self.width / s), math.ceil(self.height / s)) for s in self.strides]

    @property
    def count(self) -> int:
        """Number of priors, i.e. rows the network outputs."""
        return sum(w * h * len(b) for (w, h), b in zip(self.feature_maps, self.min_boxes, strict=True))


def generate_priors(spec: PriorSpec) -> np.ndarray:
    """Build the priors in the network's output order.

    Order: feature map, then row (y), then column (x), then prior size — the order the
    heads are flattened in. Centres are ``(i + 0.5) * stride / size``; sizes are
    ``min_box / size``; everything is clipped to [0, 1].

    Returns:
        ``(N, 4)`` float32 ``(cx, cy, w, h)`` normalised to the input size.
    """
    blocks = []
    for (fm_w, fm_h), stride, sizes in zip(spec.feature_maps, spec.strides, spec.min_boxes, strict=True):
        cx = (np.arange(fm_w, dtype=np.float64) + 0.5) * stride / spec.width
        cy = (np.arange(fm_h, dtype=np.float64) + 0.5) * stride / spec.height
        wh = np.array([[s / spec.width, s / spec.height] for s in sizes], dtype=np.float64)
        grid_y, grid_x, k = np.meshgrid(cy, cx, np.arange(len(sizes)), indexing="ij")
        block = np.stack([grid_x, grid_y, wh[k, 0], wh[k, 1]], axis=-1)
        blocks.append(block.reshape(-1, 4))
    return np.clip(np.concatenate(blocks), 0.0, 1.0).astype(np.float32)
