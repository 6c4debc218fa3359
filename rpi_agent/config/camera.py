"""One camera's section of the config: source, zones, filters, tracker, snapshots and GPIO actions.

Pure data: frozen dataclasses following the field convention of :mod:`rpi_agent.config.schema`
(``doc``, ``min``/``max``, ``choices`` in the field metadata; ``__post_init__`` raises
``ValueError("key: message")`` for checks that span fields). No I/O here.

Example (``config.toml``)::

    [[cameras]]
    name = "door"
    source = "picamera"
    [cameras.zones.entrance]
    points = [[0.2, 0.1], [0.8, 0.1], [0.8, 1.0], [0.2, 1.0]]
    [cameras.gpio]
    relay_pin = 17
    zones = ["entrance"]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Camera and zone names end up in MQTT topics and entity ids: no spaces, ``/``, ``+`` or ``#``."""

# BCM numbers of the 40-pin header's GPIOs; 0 and 1 are the HAT ID EEPROM bus but still usable.
MIN_PIN = 0
MAX_PIN = 27


def _short(name: str) -> str:
    """A name as shown in a message: cut to 40 characters, so the reason after it stays on the line."""
    return name if len(name) <= 40 else f"{name[:40]}..."


def _polygon_area(points: tuple[tuple[float, float], ...]) -> float:
    """Signed shoelace area of a closed polygon (last point joins the first)."""
    total = 0.0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
        total += x1 * y2 - x2 * y1
    return total / 2.0


@dataclass(frozen=True, slots=True)
class ZoneConfig:
    """A polygon in normalised frame coordinates: ``(0, 0)`` top left, ``(1, 1)`` bottom right."""

    points: tuple[tuple[float, float], ...] = field(
        metadata={"doc": "polygon corners [[x, y], ...] as fractions of frame width and height", "min": 3}
    )
    anchor: str = field(
        default="center",
        metadata={
            "doc": "point of the face box tested against the polygon: its centre, or the middle of its bottom edge",
            "choices": ("center", "bottom_center"),
        },
    )

    def __post_init__(self) -> None:
        points = tuple((float(x), float(y)) for x, y in self.points)
        object.__setattr__(self, "points", points)
        if len(points) < 3:
            raise ValueError(f"points: a polygon needs at least 3 corners, got {len(points)}")
        for i, (x, y) in enumerate(points):
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"points[{i}]: ({x}, {y}) is outside the frame; use fractions in [0, 1]")
        if abs(_polygon_area(points)) < 1e-6:
            raise ValueError("points: the polygon has no area (corners on one line or repeated)")


@dataclass(frozen=True, slots=True)
class FiltersConfig:
    """Detections dropped before tracking."""

    min_size: int = field(
        default=0,
        metadata={"doc": "smallest face side in pixels of the detector frame (0: no limit)", "min": 0, "max": 10000},
    )
    min_score: float | None = field(
        default=None, metadata={"doc": "a higher score threshold for this camera only (default: "
                                       "detector.threshold); not below it, where it would decide nothing",
                                "min": 0.0, "max": 1.0}
    )
    zones: tuple[str, ...] = field(
        default=(), metadata={"doc": "if set, only faces inside one of these zones are tracked"}
    )


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """IoU tracker: when a face becomes an event, when it ends, how often it is updated."""

    min_hits: int = field(
        default=3, metadata={"doc": "consecutive detections before a face is announced (new)", "min": 1, "max": 100}
    )
    max_age_frames: int = field(
        default=10, metadata={"doc": "missed frames in a row after which a face ends", "min": 1, "max": 10000}
    )
    max_age_seconds: float = field(
        default=2.0,
        metadata={"doc": "seconds without a detection after which a face ends (0: frames only)", "min": 0.0,
                  "max": 3600.0},
    )
    iou_threshold: float = field(
        default=0.3, metadata={"doc": "lowest box overlap (IoU) that links a detection to a face", "min": 0.01,
                               "max": 1.0}
    )
    update_interval: float = field(
        default=1.0,
        metadata={"doc": "least seconds between two score updates of one face (zone changes go at once)",
                  "min": 0.0, "max": 3600.0},
    )
    score_delta: float = field(
        default=0.05, metadata={"doc": "score or top_score change that counts as significant", "min": 0.0,
                                "max": 1.0}
    )


@dataclass(frozen=True, slots=True)
class SnapshotConfig:
    """JPEG snapshots of faces (published by the MQTT sink)."""

    enabled: bool = field(default=True, metadata={"doc": "publish a snapshot when a face appears"})
    crop: bool = field(default=False, metadata={"doc": "crop to the face (with a margin) instead of the full frame"})
    quality: int = field(default=80, metadata={"doc": "JPEG quality", "min": 1, "max": 100})
    zones: tuple[str, ...] = field(
        default=(), metadata={"doc": "if set, only faces inside one of these zones get a snapshot"}
    )
    min_interval: float = field(default=1.0, metadata={
        "doc": "shortest time between two snapshots of this camera, seconds; a newer request waits and "
               "replaces the one before, so the latest view is the one sent (0: no wait)", "min": 0.0})


@dataclass(frozen=True, slots=True)
class GpioConfig:
    """Actions on GPIO pins (BCM numbers): door relay, presence LED, buzzer."""

    relay_pin: int | None = field(
        default=None, metadata={"doc": "relay (door strike) pin; unset: no relay", "min": MIN_PIN, "max": MAX_PIN}
    )
    relay_active_high: bool = field(default=True, metadata={"doc": "relay energised (UNLOCKED) when the pin is high"})
    relay_seconds: float = field(
        default=3.0, metadata={"doc": "how long one unlock pulse lasts", "min": 0.1, "max": 600.0}
    )
    dwell_seconds: float = field(
        default=1.0, metadata={"doc": "how long a face must stay (in the zones) before the relay pulses",
                               "min": 0.0, "max": 3600.0}
    )
    cooldown_seconds: float = field(
        default=10.0, metadata={"doc": "least seconds from the end of one pulse to the next automatic one",
                                "min": 0.0, "max": 86400.0}
    )
    zones: tuple[str, ...] = field(
        default=(), metadata={"doc": "zones a face must be in to open the relay; empty: anywhere in the frame"}
    )
    allow_remote_unlock: bool = field(
        default=False, metadata={"doc": "accept the MQTT unlock command for this camera's relay"}
    )
    led_pin: int | None = field(
        default=None, metadata={"doc": "LED pin, lit while a face is present; unset: no LED", "min": MIN_PIN,
                                "max": MAX_PIN}
    )
    led_active_high: bool = field(default=True, metadata={"doc": "LED lit when the pin is high"})
    buzzer_pin: int | None = field(
        default=None, metadata={"doc": "buzzer pin, beeps on each new face; unset: no buzzer", "min": MIN_PIN,
                                "max": MAX_PIN}
    )
    buzzer_active_high: bool = field(default=True, metadata={"doc": "buzzer sounds when the pin is high"})
    beep_seconds: float = field(default=0.2, metadata={"doc": "length of one beep", "min": 0.01, "max": 10.0})

    def __post_init__(self) -> None:
        pins = {"relay_pin": self.relay_pin, "led_pin": self.led_pin, "buzzer_pin": self.buzzer_pin}
        seen: dict[int, str] = {}
        for key, pin in pins.items():
            if pin is None:
                continue
            if isinstance(pin, bool) or not isinstance(pin, int) or not MIN_PIN <= pin <= MAX_PIN:
                raise ValueError(f"{key}: {pin!r} is not a GPIO number ({MIN_PIN}..{MAX_PIN}, BCM numbering)")
            if pin in seen:
                raise ValueError(f"{key}: GPIO {pin} is already used by {seen[pin]}")
            seen[pin] = key
        if self.allow_remote_unlock and self.relay_pin is None:
            raise ValueError("allow_remote_unlock: needs relay_pin")

    @property
    def enabled(self) -> bool:
        """Whether any pin is configured."""
        return any(p is not None for p in (self.relay_pin, self.led_pin, self.buzzer_pin))


@dataclass(frozen=True, slots=True)
class CameraConfig:
    """One camera: where frames come from and what happens to the faces in them."""

    name: str = field(default="camera", metadata={"doc": "name used in MQTT topics and events", "max": 64})
    source: str = field(
        default="picamera",
        metadata={"doc": "picamera, picamera:N, /dev/videoN, a USB index, rtsp://..., a video file, an image "
                         "folder, or k210:/dev/ttyUSB0"},
    )
    width: int = field(
        default=640, metadata={"doc": "capture width (picamera main stream, USB cameras)", "min": 16, "max": 8192}
    )
    height: int = field(default=480, metadata={"doc": "capture height", "min": 16, "max": 8192})
    fps: float = field(
        default=10.0,
        metadata={"doc": "frame rate cap; files and folders are played at this rate (0: as fast as possible)",
                  "min": 0.0, "max": 240.0},
    )
    rotation: int = field(default=0, metadata={"doc": "clockwise rotation in degrees", "choices": (0, 90, 180, 270)})
    hflip: bool = field(default=False, metadata={"doc": "mirror left-right"})
    vflip: bool = field(default=False, metadata={"doc": "mirror top-bottom"})
    loop: bool = field(default=False, metadata={"doc": "restart video files and image folders at their end"})
    hold_frames: int = field(default=0, metadata={
        "doc": "image folders: frames each image is shown for; 0: tracker.min_hits + 2, so the faces of each "
               "still become events (1: every file is one frame of a sequence)", "min": 0, "max": 10000})
    lores_format: str = field(
        default="auto",
        metadata={"doc": "picamera detector stream format; auto: RGB888 on a Pi 5, YUV420 before",
                  "choices": ("auto", "YUV420", "RGB888")},
    )
    detect: bool = field(default=True, metadata={"doc": "detection on at start (switchable over MQTT)"})
    retry_initial: float = field(
        default=1.0, metadata={"doc": "seconds before the first retry of a failed source", "min": 0.01, "max": 60.0}
    )
    retry_max: float = field(
        default=30.0, metadata={"doc": "longest wait between retries of a failed source", "min": 0.01, "max": 3600.0}
    )
    zones: Mapping[str, ZoneConfig] = field(
        default_factory=dict, metadata={"doc": "named polygons: [cameras.zones.NAME] points = [[x, y], ...]"}
    )
    filters: FiltersConfig = field(default_factory=FiltersConfig, metadata={"doc": "detections dropped"})
    tracker: TrackerConfig = field(default_factory=TrackerConfig, metadata={"doc": "face tracking"})
    snapshot: SnapshotConfig = field(default_factory=SnapshotConfig, metadata={"doc": "JPEG snapshots"})
    gpio: GpioConfig = field(default_factory=GpioConfig, metadata={"doc": "GPIO actions"})

    @property
    def folder_hold(self) -> int:
        """Frames each image of a folder source is shown for (``hold_frames``, or its automatic value)."""
        return self.hold_frames or self.tracker.min_hits + 2

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise ValueError(f"name: {self.name!r} may only hold letters, digits, '_' and '-' (1-64 characters)")
        if not self.source.strip():
            raise ValueError("source: must not be empty")
        if self.retry_max < self.retry_initial:
            raise ValueError(f"retry_max: {self.retry_max} is below retry_initial {self.retry_initial}")
        for zone in self.zones:
            if not NAME_PATTERN.match(zone):
                raise ValueError(f"zones.{_short(zone)}: zone names may only hold letters, digits, '_' and '-' "
                                 "(1-64 characters)")
        for key, names in (("filters.zones", self.filters.zones), ("snapshot.zones", self.snapshot.zones),
                           ("gpio.zones", self.gpio.zones)):
            for zone in names:
                if zone not in self.zones:
                    known = ", ".join(sorted(self.zones)) or "none defined"
                    raise ValueError(f"{key}: unknown zone {_short(zone)!r} (zones: {known})")
