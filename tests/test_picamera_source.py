"""PicameraSource against a stand-in for the absent camera (picamera2 and libcamera modules).

Checks what this code asks of picamera2 (streams, formats, colour space, transform, frame rate)
and what it makes of the arrays it gets back; the conversions themselves are in test_sources.py.
"""

from __future__ import annotations

import enum
import sys
import types
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import pytest

from rpi_agent.sources.common import ENDED, ONLINE, RETRYING
from rpi_agent.sources.picamera import PicameraSource


class Platform(enum.Enum):
    VC4 = 0
    PISP = 1


class Camera:
    """Stands in for ``picamera2.Picamera2``: records its configuration, serves fixed arrays."""

    instances: ClassVar[list[Camera]] = []
    platform = Platform.VC4
    failures_left = 0

    def __init__(self, index: int) -> None:
        self.index = index
        self.config: dict[str, Any] = {}
        self.started = self.closed = False
        Camera.instances.append(self)

    def create_preview_configuration(self, **config: Any) -> dict[str, Any]:
        return config

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True

    def capture_request(self) -> Request:
        if Camera.failures_left:
            Camera.failures_left -= 1
            raise RuntimeError("Camera frontend has timed out!")
        return Request(self.config)


class Request:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.released = False

    def make_array(self, name: str) -> np.ndarray:
        stream = self.config[name]
        width, height = stream["size"]
        if stream["format"] == "YUV420":
            # Y = 128, U = 128, V = 228 with 64 bytes of row padding, as picamera2 returns it.
            stride = width + 64
            buf = np.full((height * 3 // 2, stride), 128, dtype=np.uint8)
            buf.reshape(-1)[height * stride + height // 2 * stride // 2:] = 228
            return buf
        bgr = np.zeros((height, width, 3), dtype=np.uint8)
        bgr[..., 0], bgr[..., 1], bgr[..., 2] = 10, 20, 30  # B, G, R
        return bgr

    def release(self) -> None:
        self.released = True


@pytest.fixture
def fake_picamera(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Camera]]:
    Camera.instances = []
    Camera.failures_left = 0
    Camera.platform = Platform.VC4
    picamera2 = types.ModuleType("picamera2")
    picamera2.Picamera2 = Camera  # type: ignore[attr-defined]
    platform = types.ModuleType("picamera2.platform")
    platform.Platform = Platform  # type: ignore[attr-defined]
    platform.get_platform = lambda: Camera.platform  # type: ignore[attr-defined]
    libcamera = types.ModuleType("libcamera")
    libcamera.Transform = lambda hflip=False, vflip=False: ("transform", hflip, vflip)  # type: ignore[attr-defined]
    libcamera.ColorSpace = types.SimpleNamespace(Sycc=lambda: "sycc")  # type: ignore[attr-defined]
    for name, module in (("picamera2", picamera2), ("picamera2.platform", platform), ("libcamera", libcamera)):
        monkeypatch.setitem(sys.modules, name, module)
    yield Camera


def take(source: PicameraSource, count: int) -> list[Any]:
    frames = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == count:
            source.close()
    return frames


def test_pi4_yuv420_lores_and_rgb_main(fake_picamera: type[Camera]) -> None:
    states: list[str] = []
    src = PicameraSource(camera="door", index=1, lores_size=(320, 240), main_size=(1280, 960), fps=15.0,
                         rotation=180, hflip=True, on_state=lambda _c, _f, v: states.append(v))
    frames = take(src, 2)
    cam = fake_picamera.instances[0]
    assert cam.index == 1
    assert cam.config["lores"] == {"size": (320, 240), "format": "YUV420"}
    assert cam.config["main"] == {"size": (1280, 960), "format": "RGB888"}
    assert cam.config["colour_space"] == "sycc"
    assert cam.config["controls"] == {"FrameRate": 15.0}
    assert cam.config["transform"] == ("transform", False, True)  # half turn = both mirrors, then hflip undone
    assert cam.closed and not cam.started
    first = frames[0]
    assert (first.width, first.height, first.camera) == (320, 240, "door")
    # Y=128, U=128, V=228 full range: R = 128 + 1.402*100 → 255, G = 128 - 71.41 → 57, B = 128.
    assert np.unique(first.rgb.reshape(-1, 3), axis=0).tolist() == [[255, 57, 128]]
    assert first.snapshot.shape == (960, 1280, 3)
    assert first.snapshot[0, 0].tolist() == [30, 20, 10]  # B,G,R bytes come out as R,G,B
    assert [f.index for f in frames] == [0, 1]
    assert states == [ONLINE, ENDED]


def test_pi5_rgb888_lores_without_snapshots(fake_picamera: type[Camera]) -> None:
    fake_picamera.platform = Platform.PISP
    src = PicameraSource(camera="door", snapshots=False, rotation=90)
    frame = take(src, 1)[0]
    cam = fake_picamera.instances[0]
    assert cam.config["lores"]["format"] == "RGB888"
    assert cam.config["controls"] == {}
    assert cam.config["transform"] == ("transform", False, False)
    assert (frame.width, frame.height) == (240, 320)  # quarter turn done in software
    assert frame.rgb[0, 0].tolist() == [30, 20, 10]
    assert frame.snapshot is None


def test_failing_camera_is_reopened(fake_picamera: type[Camera], caplog: pytest.LogCaptureFixture) -> None:
    fake_picamera.failures_left = 2
    states: list[str] = []
    src = PicameraSource(camera="door", retry_initial=0.01, retry_max=0.02, on_state=lambda _c, _f, v: states.append(v))
    frames = take(src, 1)
    assert len(frames) == 1
    assert len(fake_picamera.instances) == 3
    assert all(c.closed for c in fake_picamera.instances)
    assert states == [ONLINE, RETRYING, ONLINE, RETRYING, ONLINE, ENDED]
    assert "frontend has timed out" in caplog.text


def test_forced_lores_format(fake_picamera: type[Camera]) -> None:
    fake_picamera.platform = Platform.PISP
    src = PicameraSource(camera="door", lores_format="YUV420")
    take(src, 1)
    assert fake_picamera.instances[0].config["lores"]["format"] == "YUV420"
    with pytest.raises(ValueError, match="lores_format"):
        PicameraSource(camera="door", lores_format="NV12")
