"""The camera section: defaults, bounds, pins and cross-references, each error naming its key."""

from __future__ import annotations

import pytest

from rpi_agent.config.camera import CameraConfig, GpioConfig
from rpi_agent.config.schema import iter_fields, load_section
from rpi_agent.errors import ConfigError

ZONE = {"points": [[0, 0], [1, 0], [1, 1], [0, 1]]}


def load(data: dict[str, object]) -> CameraConfig:
    return load_section(CameraConfig, data, path="cameras[0]")


def test_defaults_are_valid() -> None:
    cam = load({})
    assert cam.name == "camera"
    assert cam.source == "picamera"
    assert cam.tracker.min_hits == 3
    assert not cam.gpio.enabled


def test_every_field_has_a_doc_line() -> None:
    missing = [path for path, fld in iter_fields(CameraConfig) if not fld.metadata.get("doc")]
    assert missing == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nmae": "x"}, r"cameras\[0\]\.nmae: unknown key"),
        ({"tracker": {"min_hits": 0}}, r"cameras\[0\]\.tracker\.min_hits: value 0 is below the minimum 1"),
        ({"tracker": {"min_hits": "3"}}, r"cameras\[0\]\.tracker\.min_hits: expected integer"),
        ({"rotation": 45}, r"cameras\[0\]\.rotation: 45 is not one of"),
        ({"filters": {"min_score": 1.5}}, r"cameras\[0\]\.filters\.min_score: value 1.5 is above"),
        ({"name": "front door"}, r"cameras\[0\]\.name: 'front door' may only hold"),
        ({"gpio": {"relay_pin": 40}}, r"cameras\[0\]\.gpio\.relay_pin: value 40 is above the maximum 27"),
        ({"gpio": {"relay_pin": -1}}, r"cameras\[0\]\.gpio\.relay_pin: value -1 is below the minimum 0"),
        ({"gpio": {"relay_pin": True}}, r"cameras\[0\]\.gpio\.relay_pin: expected integer"),
        ({"gpio": {"relay_pin": 17, "led_pin": 17}}, r"cameras\[0\]\.gpio\.led_pin: GPIO 17 is already used"),
        ({"gpio": {"allow_remote_unlock": True}}, r"cameras\[0\]\.gpio\.allow_remote_unlock: needs relay_pin"),
        ({"gpio": {"zones": ["door"]}}, r"cameras\[0\]\.gpio\.zones: unknown zone 'door' \(zones: none defined\)"),
        ({"zones": {"a": ZONE}, "snapshot": {"zones": ["b"]}}, r"cameras\[0\]\.snapshot\.zones: unknown zone 'b'"),
        ({"zones": {"a b": ZONE}}, r"cameras\[0\]\.zones\.a b: zone names may only hold"),
        ({"retry_initial": 5.0, "retry_max": 1.0}, r"cameras\[0\]\.retry_max: 1.0 is below retry_initial"),
    ],
)
def test_bad_values_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message):
        load(data)


def test_gpio_section_with_zone() -> None:
    cam = load({"zones": {"door": ZONE}, "gpio": {"relay_pin": 17, "led_pin": 27, "zones": ["door"],
                                                  "allow_remote_unlock": True}})
    assert cam.gpio.relay_pin == 17
    assert cam.gpio.zones == ("door",)
    assert cam.gpio.enabled


def test_direct_construction_checks_pins() -> None:
    with pytest.raises(ValueError, match="buzzer_pin: 99 is not a GPIO number"):
        GpioConfig(buzzer_pin=99)
