"""Plain data passed between stages: frozen, slotted, no behaviour beyond geometry."""

from __future__ import annotations

from dataclasses import dataclass

Box = tuple[float, float, float, float]
"""Pixel box ``(x1, y1, x2, y2)``, x to the right, y down, in the frame's own pixels."""


@dataclass(frozen=True, slots=True)
class Detection:
    """One face found in one frame.

    Attributes:
        box: ``(x1, y1, x2, y2)`` in pixels of the frame the detector was given.
        score: Face confidence in [0, 1].

    Example:
        >>> Detection((10.0, 20.0, 50.0, 70.0), 0.93).area
        2000.0
    """

    box: Box
    score: float

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)
