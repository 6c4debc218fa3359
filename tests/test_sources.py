"""Frame sources: colour conversion by hand, image folders, video files, and retry of a failing source."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from rpi_agent.config.camera import CameraConfig
from rpi_agent.credentials import redact_url
from rpi_agent.domain import Frame
from rpi_agent.errors import ConfigError, SourceError
from rpi_agent.imaging.files import load_rgb
from rpi_agent.sources import open_source
from rpi_agent.sources.common import ENDED, ONLINE, RETRYING, Backoff, orient
from rpi_agent.sources.images import ImageFolderSource
from rpi_agent.sources.opencv import OpenCVSource
from rpi_agent.sources.picamera import PicameraSource, bgr888_to_rgb, bgr_to_rgb, yuv420_to_rgb
from rpi_agent.sources.spec import parse_source

VIDEO_SIZE = (320, 240)


def i420(y: list[list[int]], u: list[list[int]], v: list[list[int]], stride: int | None = None) -> np.ndarray:
    """Pack planes as picamera2 does: ``(h * 3 // 2, stride)``, padding bytes set to 7 (must be ignored)."""
    ya, ua, va = (np.array(p, dtype=np.uint8) for p in (y, u, v))
    height, width = ya.shape
    stride = stride or width
    out = np.full(height * 3 // 2 * stride, 7, dtype=np.uint8)
    out[: height * stride].reshape(height, stride)[:, :width] = ya
    c = stride // 2
    base = height * stride
    out[base:base + height // 2 * c].reshape(height // 2, c)[:, : width // 2] = ua
    base += height // 2 * c
    out[base:base + height // 2 * c].reshape(height // 2, c)[:, : width // 2] = va
    return out.reshape(height * 3 // 2, stride)


def flat(value: int, height: int = 2, width: int = 2) -> list[list[int]]:
    return [[value] * width for _ in range(height)]


@pytest.mark.parametrize(
    ("yuv", "full_range", "rgb"),
    [
        ((128, 128, 128), True, (128, 128, 128)),
        ((0, 128, 128), True, (0, 0, 0)),
        ((255, 128, 128), True, (255, 255, 255)),
        # Red in full-range BT.601: Y=76, Cb=85, Cr=255 → R=76+1.402*127=254.05, G=76+0.344*43-0.714*127=0.10,
        # B=76-1.772*43=-0.20.
        ((76, 85, 255), True, (254, 0, 0)),
        ((128, 228, 128), True, (128, 94, 255)),  # Cb only: G = 128 - 0.344*100 = 93.6, B = 128 + 177 → 255
        ((16, 128, 128), False, (0, 0, 0)),
        ((235, 128, 128), False, (255, 255, 255)),
        ((126, 128, 128), False, (128, 128, 128)),  # 110 * 255/219 = 128.08
        # Red in limited range: Y=81, Cb=90, Cr=240 → R=65*1.1644+112*1.5960=254.44, G=-0.48, B=-0.97.
        ((81, 90, 240), False, (254, 0, 0)),
    ],
)
def test_yuv420_known_colours(yuv: tuple[int, int, int], full_range: bool, rgb: tuple[int, int, int]) -> None:
    y, u, v = yuv
    out = yuv420_to_rgb(i420(flat(y), flat(u, 1, 1), flat(v, 1, 1)), 2, 2, full_range=full_range)
    assert out.shape == (2, 2, 3)
    assert out.dtype == np.uint8
    assert out.reshape(-1, 3).tolist() == [list(rgb)] * 4


def test_yuv420_padding_and_chroma_blocks() -> None:
    # 4x2 picture, stride 8: two chroma samples, each covering a 2x2 block; padding must not leak in.
    y = [[128, 128, 128, 128], [128, 128, 128, 128]]
    u = [[128, 128]]
    v = [[128, 228]]  # right block: R = 128 + 1.402 * 100 = 268 → 255, G = 128 - 71.41 = 56.59 → 57
    out = yuv420_to_rgb(i420(y, u, v, stride=8), 4, 2)
    assert out[:, :2].reshape(-1, 3).tolist() == [[128, 128, 128]] * 4
    assert out[:, 2:].reshape(-1, 3).tolist() == [[255, 57, 128]] * 4
    # The same bytes as a flat buffer give the same picture.
    assert np.array_equal(yuv420_to_rgb(i420(y, u, v, stride=8).tobytes(), 4, 2), out)


def test_yuv420_matches_opencv_limited_range() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(40, 200, (8, 12)).tolist()
    u = rng.integers(100, 156, (4, 6)).tolist()
    v = rng.integers(100, 156, (4, 6)).tolist()
    buf = i420(y, u, v)
    ours = yuv420_to_rgb(buf, 12, 8, full_range=False).astype(int)
    theirs = cv2.cvtColor(buf, cv2.COLOR_YUV2RGB_I420).astype(int)
    assert np.abs(ours - theirs).max() <= 1  # fixed-point rounding in OpenCV


def test_yuv420_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="even width and height"):
        yuv420_to_rgb(np.zeros(9, np.uint8), 3, 2)
    with pytest.raises(ValueError, match="does not fit 4x2"):
        yuv420_to_rgb(np.zeros(10, np.uint8), 4, 2)


def test_bgr_to_rgb() -> None:
    bgr = np.array([[[1, 2, 3], [4, 5, 6]]], dtype=np.uint8)
    rgb = bgr_to_rgb(bgr)
    assert rgb.tolist() == [[[3, 2, 1], [6, 5, 4]]]
    assert rgb.flags["C_CONTIGUOUS"]
    assert bgr888_to_rgb is bgr_to_rgb
    with pytest.raises(ValueError, match="expected an"):
        bgr_to_rgb(np.zeros((2, 2, 4), np.uint8))


def test_orient() -> None:
    img = np.arange(6).reshape(2, 3, 1)  # [[0 1 2] [3 4 5]]
    assert orient(img, rotation=90)[..., 0].tolist() == [[3, 0], [4, 1], [5, 2]]  # clockwise
    assert orient(img, rotation=180)[..., 0].tolist() == [[5, 4, 3], [2, 1, 0]]
    assert orient(img, rotation=270)[..., 0].tolist() == [[2, 5], [1, 4], [0, 3]]
    assert orient(img, hflip=True)[..., 0].tolist() == [[2, 1, 0], [5, 4, 3]]
    assert orient(img, vflip=True)[..., 0].tolist() == [[3, 4, 5], [0, 1, 2]]
    assert orient(img, hflip=True, vflip=True).tolist() == orient(img, rotation=180).tolist()
    assert orient(img) is img


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_picamera_off_a_pi_is_one_clear_line() -> None:
    if importlib.util.find_spec("picamera2") is not None:
        pytest.skip("picamera2 is installed here (a Raspberry Pi)")
    with pytest.raises(SourceError) as info:
        PicameraSource(camera="door")
    message = str(info.value)
    assert "\n" not in message
    assert "picamera2" in message and "apt install python3-picamera2" in message


# -- image folders --------------------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path: Path, faces_dir: Path) -> Path:
    """Three real photos named so that a plain sort would put 10 before 2, plus an unreadable file."""
    out = tmp_path / "photos"
    out.mkdir()
    for name, src in (("2.jpg", "2.jpg"), ("10.jpg", "13.jpg"), ("1.jpg", "5.jpg")):
        shutil.copy(faces_dir / src, out / name)
    (out / "3.jpg").write_bytes(b"not a jpeg")
    (out / "notes.txt").write_text("ignored")
    return out


def shapes(frames: list[Frame]) -> list[tuple[int, int]]:
    return [(f.width, f.height) for f in frames]


def test_image_folder_in_natural_order(folder: Path, faces_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    states: list[tuple[str, str, str]] = []
    src = ImageFolderSource(folder, camera="demo", on_state=lambda *s: states.append(s))
    with caplog.at_level(logging.WARNING):
        frames = list(src.frames())
    expected = [load_rgb(faces_dir / n) for n in ("5.jpg", "2.jpg", "13.jpg")]
    assert len(frames) == 3
    assert all(np.array_equal(f.rgb, e) for f, e in zip(frames, expected, strict=True))  # type: ignore[arg-type]
    assert [f.index for f in frames] == [0, 1, 2]
    assert shapes(frames) == [(e.shape[1], e.shape[0]) for e in expected]
    assert "3.jpg" in caplog.text
    assert states == [("demo", "source", ONLINE), ("demo", "source", ENDED)]


def test_image_folder_holds_each_still(folder: Path) -> None:
    frames = list(ImageFolderSource(folder, camera="demo", hold=3).frames())
    assert [f.index for f in frames] == list(range(9))  # 3 readable images, 3 frames each
    for k in range(0, 9, 3):
        assert frames[k].rgb is frames[k + 1].rgb is frames[k + 2].rgb
    assert frames[2].rgb is not frames[3].rgb
    with pytest.raises(ValueError, match="at least 1"):
        ImageFolderSource(folder, camera="demo", hold=0)


def test_folder_hold_defaults_to_enough_frames_for_events(folder: Path) -> None:
    from rpi_agent.config.camera import TrackerConfig

    auto = open_source(parse_source(str(folder)), CameraConfig(name="door", fps=0.0, tracker=TrackerConfig(min_hits=4)))
    assert auto.hold == 6  # type: ignore[attr-defined]
    held = open_source(parse_source(str(folder)), CameraConfig(name="door", hold_frames=1))
    assert held.hold == 1  # type: ignore[attr-defined]


def test_image_folder_loops_until_closed(folder: Path) -> None:
    src = ImageFolderSource(folder, camera="demo", loop=True, rotation=90)
    frames = []
    for frame in src.frames():
        frames.append(frame)
        if len(frames) == 7:
            src.close()
    assert len(frames) == 7
    assert [f.index for f in frames] == list(range(7))
    assert shapes(frames)[:3] == shapes(frames)[3:6]
    first = load_rgb(folder / "1.jpg")
    assert (frames[0].width, frames[0].height) == (first.shape[0], first.shape[1])  # rotated


def test_image_folder_paced_source_stops_when_closed(folder: Path) -> None:
    src = ImageFolderSource(folder, camera="demo", fps=0.5, loop=True)  # a frame every 2 s
    got: list[Frame] = []
    worker = threading.Thread(target=lambda: got.extend(src.frames()))
    worker.start()
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    src.close()  # while the source waits for the second frame's slot, 2 s after the first
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert len(got) == 1


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="folder holds no images"):
        ImageFolderSource(tmp_path, camera="demo")
    with pytest.raises(SourceError, match="no such image file or folder"):
        ImageFolderSource(tmp_path / "nope", camera="demo")


# -- video files and live sources ----------------------------------------------------------------

def write_video(path: Path, faces_dir: Path, names: tuple[str, ...] = ("2.jpg", "13.jpg", "5.jpg")) -> list[np.ndarray]:
    """An MJPG AVI of real photos resized to 320x240; returns the RGB frames written."""
    tmp = path.with_suffix(".part.avi")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, VIDEO_SIZE)
    assert writer.isOpened()
    frames = [cv2.resize(load_rgb(faces_dir / n), VIDEO_SIZE) for n in names]
    for rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    tmp.rename(path)  # appear whole, as a reconnecting camera would
    return frames


def test_video_file_plays_to_its_end(tmp_path: Path, faces_dir: Path) -> None:
    video = tmp_path / "clip.avi"
    written = write_video(video, faces_dir)
    states: list[str] = []
    src = OpenCVSource(str(video), camera="clip", on_state=lambda _c, _f, v: states.append(v))
    assert not src.live
    frames = list(src.frames())
    assert len(frames) == len(written)
    for frame, rgb in zip(frames, written, strict=True):
        assert (frame.width, frame.height) == VIDEO_SIZE
        diff = np.abs(frame.rgb.astype(int) - rgb.astype(int)).mean()  # type: ignore[union-attr]
        assert diff < 8, diff  # JPEG-compressed, colours in RGB order (a BGR mix-up is far above this)
    assert states == [ONLINE, ENDED]


def test_video_frames_carry_media_time_however_fast_they_are_read(tmp_path: Path, faces_dir: Path) -> None:
    video = tmp_path / "clip.avi"
    write_video(video, faces_dir, names=("2.jpg", "13.jpg", "5.jpg", "2.jpg"))  # 5 fps
    started = time.time()
    src = OpenCVSource(str(video), camera="clip", loop=True)
    frames: list[Frame] = []
    for frame in src.frames():  # read as fast as they decode: far quicker than 5 fps
        frames.append(frame)
        if len(frames) == 8:
            src.close()
    gaps = np.diff([f.timestamp for f in frames])
    np.testing.assert_allclose(gaps, 0.2, atol=1e-6)  # the recording's spacing, across the loop too
    assert started <= frames[0].timestamp <= time.time()


def test_video_file_loops(tmp_path: Path, faces_dir: Path) -> None:
    video = tmp_path / "clip.avi"
    written = write_video(video, faces_dir)
    src = OpenCVSource(str(video), camera="clip", loop=True, hflip=True)
    frames: list[Frame] = []
    for frame in src.frames():
        frames.append(frame)
        if len(frames) == 2 * len(written) + 1:
            src.close()
    assert len(frames) == 2 * len(written) + 1
    assert np.array_equal(frames[0].rgb, frames[len(written)].rgb)  # type: ignore[arg-type]
    mirrored = written[0][:, ::-1].astype(int)
    assert np.abs(frames[0].rgb.astype(int) - mirrored).mean() < 8  # type: ignore[union-attr]


def test_missing_or_broken_video_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such video file"):
        OpenCVSource(str(tmp_path / "none.mp4"), camera="clip")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    with pytest.raises(SourceError, match="cannot open video file"):
        list(OpenCVSource(str(broken), camera="clip").frames())


def test_failing_live_source_is_retried_until_it_works(
    tmp_path: Path, faces_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    late = tmp_path / "late.avi"  # stands in for a camera plugged in late, then dropping out
    states: list[str] = []
    src = OpenCVSource(str(late), camera="cam", live=True, retry_initial=0.02, retry_max=0.1,
                       on_state=lambda _c, _f, v: states.append(v))
    frames: list[Frame] = []

    def consume() -> None:
        for frame in src.frames():
            frames.append(frame)
            if len(frames) == 5:  # 3 frames, a drop at the end, 2 frames after the reconnect
                src.close()

    with caplog.at_level(logging.WARNING):
        worker = threading.Thread(target=consume)
        worker.start()
        deadline = time.monotonic() + 10
        while src.failures < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert src.failures >= 3
        assert frames == []
        write_video(late, faces_dir)
        worker.join(timeout=20)
    assert not worker.is_alive()
    assert len(frames) == 5
    assert states[:3] == [RETRYING, ONLINE, RETRYING]
    assert states[-1] == ENDED
    assert "cannot open" in caplog.text and "lost frames from" in caplog.text


def test_close_interrupts_the_backoff() -> None:
    src = OpenCVSource("/dev/video99", camera="usb", retry_initial=30.0, retry_max=60.0)
    assert src.live
    worker = threading.Thread(target=lambda: list(src.frames()))
    worker.start()
    deadline = time.monotonic() + 5
    while src.failures < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    src.close()
    worker.join(timeout=5)
    assert not worker.is_alive()


def test_stream_passwords_are_redacted() -> None:
    assert redact_url("rtsp://admin:secret@10.0.0.5:554/stream") == "rtsp://admin:***@10.0.0.5:554/stream"
    assert parse_source("rtsp://admin:secret@cam/x").shown == "rtsp://admin:***@cam/x"
    assert redact_url("rtsp://cam.local/stream") == "rtsp://cam.local/stream"
    assert redact_url("/dev/video0") == "/dev/video0"


# -- open_source ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "kind", "live"), [
    ("picamera", "picamera", True), ("picamera:1", "picamera", True), ("k210:/dev/ttyUSB0", "k210", True),
    ("0", "device", True), ("/dev/video2", "device", True), ("RTSP://cam/x", "stream", True),
    ("https://cam/x.mjpg", "stream", True), ("clips/door.mp4", "path", False), ("~/photos", "path", False),
])
def test_source_strings_parse_once_into_kinds(text: str, kind: str, live: bool) -> None:
    spec = parse_source(text)
    assert (spec.kind, spec.live, spec.detects_faces) == (kind, live, kind == "k210")


@pytest.mark.parametrize("text", ["", "   ", "x" * 5000, "a\0b"])
def test_unusable_source_strings_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="source"):
        parse_source(text)


def test_open_source_picks_the_adapter(folder: Path, tmp_path: Path, faces_dir: Path) -> None:
    cam = CameraConfig(name="door", fps=0.0)
    assert isinstance(open_source(parse_source(str(folder)), cam), ImageFolderSource)
    assert isinstance(open_source(parse_source(str(folder / "2.jpg")), cam), ImageFolderSource)
    video = tmp_path / "clip.avi"
    write_video(video, faces_dir)
    assert not open_source(parse_source(str(video)), cam).live  # type: ignore[attr-defined]
    for live in ("/dev/video0", "0", "rtsp://cam.local/stream"):
        src = open_source(parse_source(live), cam)
        assert isinstance(src, OpenCVSource) and src.live
    assert open_source(parse_source(str(folder)), cam).camera == "door"
    with pytest.raises(ConfigError, match="picamera:N"):
        parse_source("picamera:front")
    with pytest.raises(SourceError, match="no such video file"):
        open_source(parse_source(str(tmp_path / "missing.mp4")), cam)
