"""USB/V4L2 cameras, video files and network streams (RTSP, HTTP) through OpenCV.

Live sources (devices, streams) never give up: a failure to open or to read (camera unplugged,
stream dropped) is logged, reported as ``RETRYING`` and retried with exponential backoff, and the
backoff resets once frames flow again. A video file ends the run cleanly at its end unless
``loop`` is set; a file that cannot be opened at all is a :class:`SourceError`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from rpi_agent.domain import Frame
from rpi_agent.errors import SourceError
from rpi_agent.sources.common import ENDED, ONLINE, RETRYING, Backoff, Pacer, SourceStatus, StateCallback, orient
from rpi_agent.sources.spec import parse_source

log = logging.getLogger(__name__)

STREAM_TIMEOUT_MS = 5000


def bgr_frame_to_rgb(bgr: np.ndarray) -> np.ndarray:
    """OpenCV's ``(H, W, 3)`` B,G,R (or ``(H, W)`` grey) frame as C-contiguous RGB."""
    if bgr.ndim == 2:
        return np.ascontiguousarray(np.repeat(bgr[:, :, None], 3, axis=2))
    return np.ascontiguousarray(bgr[:, :, 2::-1])


class OpenCVSource:
    """Frames from ``cv2.VideoCapture``.

    Args:
        spec: USB index (``"0"``), ``/dev/videoN``, a stream URL, or a video file path.
        camera: Camera name put on every frame.
        width: Requested capture width (devices only).
        height: Requested capture height (devices only).
        fps: Devices: requested rate; files: playback rate (0: as fast as consumed); streams: unused.
        loop: Files: start again at the end.
        rotation: Clockwise degrees applied to every frame.
        hflip: Mirror left-right.
        vflip: Mirror top-bottom.
        retry_initial: First wait after a failure, seconds.
        retry_max: Longest wait between retries.
        live: Override the live/file guess from ``spec`` (a live source retries at its end too).
        on_state: Status callback (``ONLINE``, ``RETRYING``, ``ENDED``).

    Raises:
        SourceError: A video file does not exist.
    """

    def __init__(
        self,
        spec: str,
        *,
        camera: str,
        width: int = 640,
        height: int = 480,
        fps: float = 0.0,
        loop: bool = False,
        rotation: int = 0,
        hflip: bool = False,
        vflip: bool = False,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
        live: bool | None = None,
        on_state: StateCallback | None = None,
    ) -> None:
        self.spec = spec
        self.source = parse_source(spec)
        self.camera = camera
        self.live = self.source.live if live is None else live
        if not self.live and not self.source.path.is_file():
            raise SourceError(f"{spec}: no such video file")
        self.size = (width, height)
        self.fps = fps
        self.loop = loop
        self._orient = {"rotation": rotation, "hflip": hflip, "vflip": vflip}
        self._backoff = Backoff(retry_initial, retry_max)
        self._stop = threading.Event()
        self._status = SourceStatus(camera, on_state)
        self._cap: Any = None
        self._since_open = 0
        self._media_origin: float | None = None
        self._media_loops = 0.0  # media seconds of the passes already played, when looping
        self._media_last = 0.0
        self.failures = 0
        """Failed opens and reads so far (for stats and tests)."""

    @property
    def _shown(self) -> str:
        return self.source.shown

    def _open(self) -> Any | None:
        """A capture that is open, or None after logging why not."""
        import cv2

        kind = self.source.kind
        if kind == "device" and self.source.index >= 0:
            cap = cv2.VideoCapture(self.source.index, cv2.CAP_V4L2)
        elif kind == "stream":
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                      STREAM_TIMEOUT_MS]
            cap = cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG, params)
        else:
            cap = cv2.VideoCapture(str(self.source.path))
        if not cap.isOpened():
            cap.release()
            return None
        if self.live and kind != "stream":
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
            if self.fps > 0:
                cap.set(cv2.CAP_PROP_FPS, self.fps)
        return cap

    def _fail(self, what: str) -> bool:
        """Log a failure, release the capture, wait the backoff; False if closed meanwhile."""
        self.failures += 1
        self._release()
        delay = self._backoff.next_delay()
        log.warning("camera %s: %s %s; retry %d in %.1f s", self.camera, what, self._shown,
                    self._backoff.failures, delay)
        self._status.set(RETRYING)
        return not self._stop.wait(delay)

    def _ensure_open(self) -> bool:
        """Open the capture if needed, retrying live sources; False when closed or the file cannot open."""
        if self._stop.is_set():
            return False  # closed at the very end of a file: no further read would end the loop
        while self._cap is None:
            if self._stop.is_set():
                return False
            self._cap = self._open()
            self._since_open = 0
            if self._cap is not None:
                log.info("camera %s: opened %s", self.camera, self._shown)
                self._status.set(ONLINE)
                return True
            if not self.live:
                raise SourceError(f"{self.spec}: cannot open video file (not a video OpenCV can decode?)")
            if not self._fail("cannot open"):
                return False
        return True

    def frames(self) -> Iterator[Frame]:
        """Frames until the file ends (unless looping) or ``close()``; live sources retry forever."""
        pacer = Pacer(0.0 if self.live else self.fps, self._stop)
        index = 0
        try:
            while self._ensure_open():
                ok, bgr = self._cap.read()
                if not ok or bgr is None:
                    if self._stop.is_set() or not self._at_end():
                        continue
                    break
                self._backoff.reset()
                self._since_open += 1
                rgb = orient(bgr_frame_to_rgb(bgr), **self._orient)  # type: ignore[arg-type]
                if not pacer.wait():
                    break
                height, width = rgb.shape[:2]
                yield Frame(self.camera, index, self._capture_time(), rgb, width, height)
                index += 1
        finally:
            self._release()
        self._status.set(ENDED)

    def _capture_time(self) -> float:
        """Wall clock for a live feed; for a file, its media time counted from when playback began.

        A file's events then carry the recording's own spacing, however fast it is decoded.
        """
        if self.live:
            return time.time()
        import cv2

        if self._media_origin is None:
            self._media_origin = time.time()
        media = max(0.0, float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1e3)
        self._media_last = media
        return self._media_origin + self._media_loops + media

    def _at_end(self) -> bool:
        """Handle a failed read: True when the run should end (a file without loop)."""
        if self.live:
            self._fail("lost frames from")
            return False
        if self.loop and self._since_open == 0:
            log.warning("camera %s: %s gave no frame; not looping", self.camera, self._shown)
            return True
        if self.loop:
            log.info("camera %s: end of %s, looping", self.camera, self._shown)
            self._media_loops += self._media_last + self._frame_period()
            self._release()
            return False
        log.info("camera %s: end of %s", self.camera, self._shown)
        return True

    def _frame_period(self) -> float:
        import cv2

        fps = float(self._cap.get(cv2.CAP_PROP_FPS)) if self._cap is not None else 0.0
        return 1.0 / fps if fps > 0 else 0.0

    def _release(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def close(self) -> None:
        """Stop ``frames()`` (also from another thread, within one read); idempotent."""
        self._stop.set()
