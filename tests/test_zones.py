"""Zones: anchor points, point-in-polygon and zone membership against values worked out by hand."""

from __future__ import annotations

import pytest

from rpi_agent.config.camera import CameraConfig, ZoneConfig
from rpi_agent.config.schema import load_section
from rpi_agent.errors import ConfigError
from rpi_agent.tracking.zones import Zone, ZoneSet, anchor_point, merge_entered, point_in_polygon

SQUARE = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
# An L: the square (0,0)-(2,2) minus its top-right quarter (1,1)-(2,2) (y grows downwards, as in images).
ELL = ((0.0, 0.0), (2.0, 0.0), (2.0, 1.0), (1.0, 1.0), (1.0, 2.0), (0.0, 2.0))
DIAMOND = ((0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5))


def test_anchor_points() -> None:
    assert anchor_point((10.0, 20.0, 30.0, 60.0), "center") == (20.0, 40.0)
    assert anchor_point((10.0, 20.0, 30.0, 60.0), "bottom_center") == (20.0, 60.0)
    with pytest.raises(ValueError, match="anchor"):
        anchor_point((0.0, 0.0, 1.0, 1.0), "top")


@pytest.mark.parametrize(
    ("point", "polygon", "inside"),
    [
        ((0.5, 0.5), SQUARE, True),
        ((1.5, 0.5), SQUARE, False),
        ((0.5, -0.1), SQUARE, False),
        ((0.5, 1.5), ELL, True),  # lower-left arm
        ((1.5, 0.5), ELL, True),  # upper-right arm
        ((1.5, 1.5), ELL, False),  # the notch
        ((0.4, 0.4), ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)), True),  # x + y = 0.8 < 1
        ((0.6, 0.6), ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)), False),  # x + y = 1.2 > 1
        ((0.4, 0.4), ((0.0, 1.0), (1.0, 0.0), (0.0, 0.0)), True),  # same triangle, other winding
        ((0.2, 0.5), DIAMOND, True),  # the ray passes through the vertex (1, 0.5)
        ((-0.5, 0.5), DIAMOND, False),  # the ray passes through two vertices
        ((0.9, 0.1), DIAMOND, False),  # the cut-off corner
    ],
)
def test_point_in_polygon(point: tuple[float, float], polygon: tuple[tuple[float, float], ...], inside: bool) -> None:
    assert point_in_polygon(point, polygon) is inside


def test_zone_uses_normalised_coordinates() -> None:
    left = Zone("left", ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)))
    # 200x100 frame: centre (50, 50) → (0.25, 0.5) inside; centre (150, 50) → (0.75, 0.5) outside.
    assert left.contains((40.0, 40.0, 60.0, 60.0), 200, 100)
    assert not left.contains((140.0, 40.0, 160.0, 60.0), 200, 100)
    # The same box in a 100x100 frame: centre (150, 50) → (1.5, 0.5), outside.
    assert not left.contains((140.0, 40.0, 160.0, 60.0), 100, 100)


def test_center_and_bottom_center_anchors_differ() -> None:
    lower_half = ((0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0))
    box = (40.0, 30.0, 60.0, 60.0)  # centre y = 45 (0.45), bottom y = 60 (0.6) in a 100x100 frame
    assert not Zone("low", lower_half, "center").contains(box, 100, 100)
    assert Zone("low", lower_half, "bottom_center").contains(box, 100, 100)


def test_zone_set_from_config_in_order() -> None:
    camera = CameraConfig(
        name="door",
        zones={
            "right": ZoneConfig(((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0))),
            "all": ZoneConfig(SQUARE),
            "left": ZoneConfig(((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0))),
        },
    )
    zones = ZoneSet.from_config(camera.zones)
    assert zones.zones_of((10.0, 10.0, 20.0, 20.0), 100, 100) == ("all", "left")
    assert zones.zones_of((70.0, 10.0, 90.0, 20.0), 100, 100) == ("right", "all")
    assert ZoneSet().zones_of((0.0, 0.0, 1.0, 1.0), 10, 10) == ()


def test_merge_entered_keeps_first_entry_order() -> None:
    assert merge_entered((), ("a",)) == ("a",)
    assert merge_entered(("a",), ("b", "a")) == ("a", "b")
    assert merge_entered(("a", "b"), ()) == ("a", "b")


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([[0, 0], [1, 0]], ": length 2 is below the minimum 3"),
        ([[0, 0], [1.2, 0], [1, 1]], r"\[1\]: \(1.2, 0.0\) is outside the frame"),
        ([[0, 0], [0.5, 0.5], [1, 1]], ": the polygon has no area"),
        ([[0, 0], [1, 0], "x"], r"\[2\]: expected array"),
    ],
)
def test_bad_zone_polygons_name_the_key(points: object, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^cameras\[0\]\.zones\.door\.points" + message):
        load_section(CameraConfig, {"name": "c", "zones": {"door": {"points": points}}}, path="cameras[0]")


def test_zone_loaded_from_toml_shape() -> None:
    zone = {"points": [[0, 0], [1, 0], [1, 1]], "anchor": "bottom_center"}
    cam = load_section(CameraConfig, {"zones": {"door": zone}})
    assert cam.zones["door"].points == ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0))
    assert cam.zones["door"].anchor == "bottom_center"
