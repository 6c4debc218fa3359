"""Which prior layout and letterbox fill a loaded model needs, read from its outputs.

A model without a landmark output is an Ultra-Light network (clipped priors on four maps). A
model with one is either a slim/RFB landmark network (the same four maps, unclipped) or
RetinaFace (three maps); the row count tells them apart at any input size, since the two
layouts give different counts. A model whose row count fits no layout is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from rpi_agent.detection.priors import (
    DEFAULT_MIN_BOXES,
    DEFAULT_STRIDES,
    RETINAFACE_MIN_BOXES,
    RETINAFACE_STRIDES,
    PriorSpec,
)
from rpi_agent.errors import ModelError

# The RGB pixel the landmark networks see as zero: their training mean (BGR 104, 117, 123).
LANDMARK_PAD_RGB = (123, 117, 104)


@dataclass(frozen=True, slots=True)
class ModelLayout:
    """Prior layout and input fill of one network family.

    Attributes:
        name: ``ultra-light``, ``ssd-landmark`` or ``retinaface``.
        min_boxes: Prior sides per feature map, in input pixels.
        strides: Feature-map strides.
        clip: Whether the priors are clipped to the input.
        pad_value: Letterbox fill (per RGB channel): the pixel the network sees as zero.
    """

    name: str
    min_boxes: tuple[tuple[int, ...], ...]
    strides: tuple[int, ...]
    clip: bool
    pad_value: int | tuple[int, int, int]

    def spec(self, width: int, height: int) -> PriorSpec:
        """The prior spec of this layout at an input size."""
        return PriorSpec(width, height, min_boxes=self.min_boxes, strides=self.strides, clip=self.clip)


ULTRA_LIGHT = ModelLayout("ultra-light", DEFAULT_MIN_BOXES, DEFAULT_STRIDES, clip=True, pad_value=127)
SSD_LANDMARK = ModelLayout("ssd-landmark", DEFAULT_MIN_BOXES, DEFAULT_STRIDES, clip=False, pad_value=LANDMARK_PAD_RGB)
RETINAFACE = ModelLayout("retinaface", RETINAFACE_MIN_BOXES, RETINAFACE_STRIDES, clip=False,
                         pad_value=LANDMARK_PAD_RGB)


def layout_for(*, width: int, height: int, rows: int, has_landmarks: bool, label: str) -> ModelLayout:
    """The layout whose prior count at ``width`` x ``height`` equals the model's output rows.

    Raises:
        ModelError: No layout of the model's kind has that many priors at that size.
    """
    candidates = (SSD_LANDMARK, RETINAFACE) if has_landmarks else (ULTRA_LIGHT,)
    counts = {layout.name: layout.spec(width, height).count for layout in candidates}
    for layout in candidates:
        if counts[layout.name] == rows:
            return layout
    expected = " or ".join(f"{count} ({name})" for name, count in counts.items())
    raise ModelError(f"{label}: model outputs {rows} boxes but the priors for {width}x{height} number "
                     f"{expected}; the file does not match its priors")
