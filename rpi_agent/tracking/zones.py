"""Which zones (polygons in normalised coordinates) a face box is in.

A face is in a zone when one point of its box lies inside the polygon. The point is the box
centre by default: faces sit at head height, so a zone is drawn around where heads appear
(a doorway, a desk), and the centre is the steadiest point of a face box. ``bottom_center``
(the middle of the box's lower edge, the chin) is Frigate's choice for whole bodies standing on
a floor and is offered for zones drawn that way. A point exactly on an edge may fall either
side; zones are meant to be drawn with margin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rpi_agent.domain import Box

Point = tuple[float, float]

ANCHORS = ("center", "bottom_center")


def anchor_point(box: Box, anchor: str = "center") -> Point:
    """The point of a pixel ``(x1, y1, x2, y2)`` box that is tested against zones.

    Example:
        >>> anchor_point((10.0, 20.0, 30.0, 60.0), "bottom_center")
        (20.0, 60.0)
    """
    x1, y1, x2, y2 = box
    if anchor == "center":
        return ((x1 + x2) / 2.0, (y1 + y2) / 2.0)
    if anchor == "bottom_center":
        return ((x1 + x2) / 2.0, y2)
    raise ValueError(f"anchor must be one of {ANCHORS}, got {anchor!r}")


def point_in_polygon(point: Point, polygon: Sequence[Point]) -> bool:
    """Even-odd ray casting: does a horizontal ray from ``point`` cross the polygon's edges an odd number of times?

    Works for convex and concave (not self-intersecting) polygons in any winding order.

    Args:
        point: ``(x, y)``.
        polygon: At least 3 corners ``(x, y)``; the last joins the first.
    """
    x, y = point
    inside = False
    count = len(polygon)
    for i in range(count):
        xa, ya = polygon[i]
        xb, yb = polygon[(i - 1) % count]
        # Half-open rule (ya > y) != (yb > y) counts a vertex on the ray once, not twice.
        if (ya > y) != (yb > y):
            x_cross = xa + (y - ya) * (xb - xa) / (yb - ya)
            if x < x_cross:
                inside = not inside
    return inside


@dataclass(frozen=True, slots=True)
class Zone:
    """A named polygon in normalised coordinates with the box point tested against it."""

    name: str
    points: tuple[Point, ...]
    anchor: str = "center"

    def contains(self, box: Box, width: int, height: int) -> bool:
        """Whether the box's anchor point, scaled to ``[0, 1]`` by the frame size, is inside."""
        px, py = anchor_point(box, self.anchor)
        return point_in_polygon((px / width, py / height), self.points)


class ZoneSet:
    """All zones of one camera, in config order.

    Example:
        >>> zs = ZoneSet([Zone("left", ((0, 0), (0.5, 0), (0.5, 1), (0, 1)))])
        >>> zs.zones_of((10.0, 10.0, 30.0, 30.0), 100, 100)
        ('left',)
    """

    def __init__(self, zones: Sequence[Zone] = ()) -> None:
        self.zones = tuple(zones)

    @classmethod
    def from_config(cls, zones: Mapping[str, object]) -> ZoneSet:
        """Build from ``CameraConfig.zones`` (objects with ``points`` and ``anchor``)."""
        built = [Zone(name, tuple(z.points), z.anchor) for name, z in zones.items()]  # type: ignore[attr-defined]
        return cls(built)

    def __len__(self) -> int:
        return len(self.zones)

    def zones_of(self, box: Box, width: int, height: int) -> tuple[str, ...]:
        """Names of the zones the box is in now, in config order."""
        return tuple(z.name for z in self.zones if z.contains(box, width, height))


def merge_entered(entered: tuple[str, ...], current: Sequence[str]) -> tuple[str, ...]:
    """``entered`` extended by the zones of ``current`` not yet in it, keeping first-entry order."""
    added = tuple(z for z in current if z not in entered)
    return entered + added if added else entered
