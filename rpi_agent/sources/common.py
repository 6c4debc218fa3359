"""Pieces every frame source shares: orientation, pacing, retry with backoff, status reports."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

log = logging.getLogger(__name__)

StateCallback = Callable[[str, str, str], None]
"""``on_state(camera, feature, value)``: the daemon forwards it to ``<prefix>/<camera>/<feature>/state``."""

SOURCE_FEATURE = "source"
ONLINE = "ONLINE"
RETRYING = "RETRYING"
ENDED = "ENDED"


def orient(rgb: np.ndarray, *, rotation: int = 0, hflip: bool = False, vflip: bool = False) -> np.ndarray:
    """Mirror, then rotate clockwise: the picture as the camera is mounted.

    Args:
        rgb: ``(H, W, C)`` image.
        rotation: 0, 90, 180 or 270 degrees clockwise.
        hflip: Mirror left-right.
        vflip: Mirror top-bottom.

    Returns:
        A C-contiguous array (the input itself when nothing changes).
    """
    if rotation not in (0, 90, 180, 270):
        raise ValueError(f"rotation must be 0, 90, 180 or 270, got {rotation}")
    out = rgb
    if hflip:
        out = out[:, ::-1]
    if vflip:
        out = out[::-1]
    if rotation:
        out = np.rot90(out, k=-(rotation // 90))
    return out if out is rgb else np.ascontiguousarray(out)


class Backoff:
    """Exponential delays between retries: ``initial``, ``2*initial``, ... capped at ``maximum``.

    Example:
        >>> b = Backoff(1.0, 5.0)
        >>> [b.next_delay() for _ in range(4)]
        [1.0, 2.0, 4.0, 5.0]
    """

    def __init__(self, initial: float, maximum: float) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got {initial}, {maximum}")
        self.initial = initial
        self.maximum = maximum
        self.failures = 0

    def next_delay(self) -> float:
        """The wait before the next attempt; counts one more failure."""
        delay = min(self.maximum, self.initial * 2.0 ** min(self.failures, 60))
        self.failures += 1
        return delay

    def reset(self) -> None:
        """Back to the initial delay after a success."""
        self.failures = 0


class SourceStatus:
    """Reports a source's state changes once each, to the log and to an optional callback.

    Args:
        camera: Camera name.
        on_state: ``on_state(camera, "source", value)``; exceptions from it are logged, not raised,
            because a status report must never stop the frames.
    """

    def __init__(self, camera: str, on_state: StateCallback | None = None) -> None:
        self.camera = camera
        self._on_state = on_state
        self.value: str | None = None

    def set(self, value: str) -> None:
        if value == self.value:
            return
        self.value = value
        if self._on_state is None:
            return
        try:
            self._on_state(self.camera, SOURCE_FEATURE, value)
        except Exception:
            log.exception("camera %s: source state callback failed", self.camera)


class Pacer:
    """Spaces frames ``1/fps`` apart on the monotonic clock; waits wake early when ``stop`` is set.

    Args:
        fps: Frames per second; 0 means no pacing.
        stop: Set by ``close()`` to end a wait at once.
    """

    def __init__(self, fps: float, stop: threading.Event) -> None:
        self.period = 1.0 / fps if fps > 0 else 0.0
        self._stop = stop
        self._next: float | None = None

    def wait(self) -> bool:
        """Wait for the next slot; False if stopped meanwhile."""
        if self.period == 0.0:
            return not self._stop.is_set()
        now = time.monotonic()
        if self._next is None or self._next < now - self.period:
            # First frame, or we fell behind by more than a frame: restart the schedule instead of bursting.
            self._next = now
        delay = self._next - now
        self._next += self.period
        if delay > 0:
            return not self._stop.wait(delay)
        return not self._stop.is_set()
