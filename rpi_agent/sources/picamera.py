"""Raspberry Pi cameras through picamera2 (imported only when a camera is opened).

Two streams from one request: ``lores`` at the model's input size feeds the detector, so no resize
is needed, and ``main`` (the configured width x height) feeds snapshots. ``lores`` must be YUV420 on
a Pi 4 and earlier (the VC4 ISP); a Pi 5 (PiSP) can give RGB888, which saves the conversion.
picamera2's ``RGB888`` arrays hold each pixel as B, G, R bytes.

Colour: the configuration asks for the ``Sycc`` colour space (picamera2's default for preview and
still configurations): BT.601 matrix, full range (the JPEG convention), so ``yuv420_to_rgb`` defaults
to full range. Video configurations default to SMPTE 170M (BT.601, limited range) below 1280x720
and Rec.709 above; pass ``full_range=False`` for limited-range data.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rpi_agent.domain import Frame
from rpi_agent.errors import SourceError
from rpi_agent.sources.common import ENDED, ONLINE, RETRYING, Backoff, SourceStatus, StateCallback, orient

log = logging.getLogger(__name__)

DEVICE_MODEL = Path("/proc/device-tree/model")
PI5_MODELS = ("Raspberry Pi 5", "Raspberry Pi 500", "Compute Module 5")


def _limited_to_full_luts() -> tuple[np.ndarray, np.ndarray]:
    """Lookup tables stretching limited-range Y (16-235) and chroma (16-240) to 0-255."""
    levels = np.arange(256, dtype=np.float32)
    luma = np.clip(np.rint((levels - 16.0) * (255.0 / 219.0)), 0, 255).astype(np.uint8)
    chroma = np.clip(np.rint((levels - 128.0) * (255.0 / 224.0) + 128.0), 0, 255).astype(np.uint8)
    return luma, chroma


_LIMITED_LUMA, _LIMITED_CHROMA = _limited_to_full_luts()


def yuv420_to_rgb(buf: Any, width: int, height: int, *, full_range: bool = True) -> np.ndarray:
    """Planar YUV 4:2:0 (I420: Y plane, then U, then V) to RGB with the BT.601 matrix.

    Rows may be padded: picamera2's ``capture_array("lores")`` has shape ``(height * 3 // 2, stride)``
    with ``stride >= width``; the chroma planes then have rows of ``stride // 2`` bytes. Chroma is
    upsampled by repeating each sample over its 2x2 block. OpenCV's ``YCrCb2RGB`` does the matrix
    (full-range BT.601, the JPEG convention) in fixed point: ~0.2 ms at 320x240 where float NumPy
    takes ~5 ms; results may differ from exact arithmetic by one level.

    Args:
        buf: ``(height * 3 // 2, stride)`` uint8 array, or a flat buffer of ``height * 3 // 2 * stride``
            bytes (stride inferred).
        width: Picture width in pixels (even).
        height: Picture height in pixels (even).
        full_range: Y and UV use 0-255 (JPEG/sYCC); False for limited range (Y 16-235, UV 16-240),
            stretched to full range through lookup tables first.

    Returns:
        ``(height, width, 3)`` uint8 RGB.

    Raises:
        ValueError: Odd size, or a buffer whose length does not fit the size.
    """
    import cv2

    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"YUV420 needs a positive even width and height, got {width}x{height}")
    flat = np.frombuffer(buf, dtype=np.uint8) if isinstance(buf, bytes | bytearray | memoryview) else \
        np.ascontiguousarray(buf, dtype=np.uint8).reshape(-1)
    rows = height * 3 // 2
    if flat.size % rows or flat.size // rows < width:
        raise ValueError(f"YUV420 buffer of {flat.size} bytes does not fit {width}x{height}")
    stride = flat.size // rows
    cstride, cheight = stride // 2, height // 2
    y_end = height * stride
    u_end = y_end + cheight * cstride
    y = flat[:y_end].reshape(height, stride)[:, :width]
    u = flat[y_end:u_end].reshape(cheight, cstride)[:, : width // 2]
    v = flat[u_end:u_end + cheight * cstride].reshape(cheight, cstride)[:, : width // 2]
    if not full_range:
        y, u, v = _LIMITED_LUMA[y], _LIMITED_CHROMA[u], _LIMITED_CHROMA[v]
    size = (width, height)
    ycrcb = cv2.merge([
        np.ascontiguousarray(y),
        cv2.resize(np.ascontiguousarray(v), size, interpolation=cv2.INTER_NEAREST),
        cv2.resize(np.ascontiguousarray(u), size, interpolation=cv2.INTER_NEAREST),
    ])
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)


def bgr_to_rgb(bgr: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` B,G,R (picamera2 ``RGB888``, OpenCV) to C-contiguous R,G,B."""
    if bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) array, got shape {bgr.shape}")
    return np.ascontiguousarray(bgr[:, :, ::-1])


bgr888_to_rgb = bgr_to_rgb


def is_pi5() -> bool:
    """Whether this board has the PiSP camera pipeline (Pi 5 family), which allows RGB888 lores."""
    try:
        from picamera2.platform import Platform, get_platform

        return bool(get_platform() == Platform.PISP)
    except ImportError:
        pass
    try:
        model = DEVICE_MODEL.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(name in model for name in PI5_MODELS)


def import_picamera2() -> tuple[Any, Any]:
    """``(Picamera2, libcamera)``, or one clear line saying how to get them.

    Raises:
        SourceError: Not on a Raspberry Pi, or ``python3-picamera2`` not visible from this Python.
    """
    try:
        import libcamera
        from picamera2 import Picamera2
    except ImportError as exc:
        raise SourceError(
            f"picamera: cannot import picamera2 ({exc}); on a Raspberry Pi run `sudo apt install "
            "python3-picamera2` and create the venv with --system-site-packages"
        ) from None
    return Picamera2, libcamera


class PicameraSource:
    """Frames from a Raspberry Pi camera: ``lores`` for the detector, ``main`` for snapshots.

    Args:
        camera: Camera name put on every frame.
        index: Camera number (``picamera:1`` for the second camera of a Pi 5).
        lores_size: ``(width, height)`` of the detector stream: the model's input size.
        main_size: ``(width, height)`` of the snapshot stream.
        fps: ``FrameRate`` control; 0 leaves the camera's default.
        rotation: 0 or 180 are done by the ISP; 90 and 270 in software after capture.
        hflip: Mirror left-right (ISP).
        vflip: Mirror top-bottom (ISP).
        lores_format: ``"auto"`` (RGB888 on a Pi 5, else YUV420), ``"YUV420"`` or ``"RGB888"``.
        snapshots: Also copy the ``main`` stream into ``Frame.snapshot``.
        retry_initial: First wait after a camera failure, seconds.
        retry_max: Longest wait between retries.
        on_state: Status callback (``ONLINE``, ``RETRYING``, ``ENDED``).
    """

    live = True

    def __init__(
        self,
        *,
        camera: str,
        index: int = 0,
        lores_size: tuple[int, int] = (320, 240),
        main_size: tuple[int, int] = (640, 480),
        fps: float = 0.0,
        rotation: int = 0,
        hflip: bool = False,
        vflip: bool = False,
        lores_format: str = "auto",
        snapshots: bool = True,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
        on_state: StateCallback | None = None,
    ) -> None:
        if lores_format not in ("auto", "YUV420", "RGB888"):
            raise ValueError(f"lores_format must be auto, YUV420 or RGB888, got {lores_format!r}")
        self.camera = camera
        self.index = index
        self.lores_size = lores_size
        self.main_size = main_size
        self.fps = fps
        self.snapshots = snapshots
        # The ISP mirrors; a half turn is both mirrors. Quarter turns are left to software.
        half_turn = rotation == 180
        self._isp_flips = (hflip != half_turn, vflip != half_turn)
        self._soft_rotation = rotation if rotation in (90, 270) else 0
        self._lores_format = lores_format
        self._backoff = Backoff(retry_initial, retry_max)
        self._stop = threading.Event()
        self._status = SourceStatus(camera, on_state)
        self._picam: Any = None
        self._format = "YUV420"
        self._picamera2, self._libcamera = import_picamera2()

    def _start(self) -> None:
        fmt = self._lores_format
        if fmt == "auto":
            fmt = "RGB888" if is_pi5() else "YUV420"
        lc = self._libcamera
        picam = self._picamera2(self.index)
        try:
            config = picam.create_preview_configuration(
                main={"size": self.main_size, "format": "RGB888"},
                lores={"size": self.lores_size, "format": fmt},
                transform=lc.Transform(hflip=self._isp_flips[0], vflip=self._isp_flips[1]),
                colour_space=lc.ColorSpace.Sycc(),
                controls={"FrameRate": self.fps} if self.fps > 0 else {},
            )
            picam.configure(config)
            picam.start()
        except Exception:
            picam.close()
            raise
        self._picam, self._format = picam, fmt
        log.info("camera %s: picamera %d started, lores %dx%d %s, main %dx%d", self.camera, self.index,
                 *self.lores_size, fmt, *self.main_size)

    def _capture(self) -> tuple[np.ndarray, np.ndarray | None]:
        request = self._picam.capture_request()
        try:
            lores = request.make_array("lores")
            main = request.make_array("main") if self.snapshots else None
        finally:
            request.release()
        width, height = self.lores_size
        rgb = yuv420_to_rgb(lores, width, height) if self._format == "YUV420" else bgr_to_rgb(lores)
        snap = bgr_to_rgb(main) if main is not None else None
        if self._soft_rotation:
            rgb = orient(rgb, rotation=self._soft_rotation)
            snap = orient(snap, rotation=self._soft_rotation) if snap is not None else None
        return rgb, snap

    def frames(self) -> Iterator[Frame]:
        """Frames until ``close()``; a failing camera is closed, reported and reopened with backoff."""
        index = 0
        try:
            while not self._stop.is_set():
                try:
                    if self._picam is None:
                        self._start()
                        self._status.set(ONLINE)
                    rgb, snap = self._capture()
                except (RuntimeError, OSError, IndexError) as exc:  # IndexError: no camera with that number
                    if not self._retry(exc):
                        break
                    continue
                self._backoff.reset()
                height, width = rgb.shape[:2]
                yield Frame(self.camera, index, time.time(), rgb, width, height, snapshot=snap)
                index += 1
        finally:
            self._release()
        self._status.set(ENDED)

    def _retry(self, exc: BaseException) -> bool:
        self._release()
        delay = self._backoff.next_delay()
        log.warning("camera %s: picamera %d failed (%s); retry %d in %.1f s", self.camera, self.index, exc,
                    self._backoff.failures, delay)
        self._status.set(RETRYING)
        return not self._stop.wait(delay)

    def _release(self) -> None:
        picam, self._picam = self._picam, None
        if picam is None:
            return
        try:
            picam.stop()
        finally:
            picam.close()

    def close(self) -> None:
        """Stop ``frames()`` (from any thread); the camera is released by the reading thread."""
        self._stop.set()
