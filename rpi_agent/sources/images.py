"""A folder (or a single file) of images played as a camera, for demos and tests."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rpi_agent.domain import Frame
from rpi_agent.errors import ImageError, SourceError
from rpi_agent.imaging.files import load_rgb
from rpi_agent.imaging.listing import list_images
from rpi_agent.sources.common import ENDED, ONLINE, Pacer, SourceStatus, StateCallback, orient

log = logging.getLogger(__name__)


class ImageFolderSource:
    """Plays the images of a folder in natural order at a set rate, optionally looping.

    Each image is shown ``hold`` frames in a row, as a camera would see a still scene: a tracker needs
    a face in several frames before it announces it. An unreadable image is logged and skipped. Boxes
    are in the pixels of each image, so images of different sizes may be mixed.

    Args:
        path: A folder of images, or one image file.
        camera: Camera name put on every frame.
        fps: Frames per second; 0 plays as fast as the consumer takes them.
        loop: Start again after the last image.
        hold: Frames each image is shown for (1: each file is one frame of a sequence).
        rotation: Clockwise degrees applied to every image.
        hflip: Mirror left-right.
        vflip: Mirror top-bottom.
        on_state: Status callback (``ONLINE``, ``ENDED``).

    Example:
        >>> src = ImageFolderSource("photos/", camera="demo", fps=2)  # doctest: +SKIP
        >>> for frame in src.frames(): ...  # doctest: +SKIP
    """

    live = False

    def __init__(
        self,
        path: str | Path,
        *,
        camera: str,
        fps: float = 0.0,
        loop: bool = False,
        hold: int = 1,
        rotation: int = 0,
        hflip: bool = False,
        vflip: bool = False,
        on_state: StateCallback | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        try:
            self.paths = list_images(self.path)
        except ImageError as exc:
            raise SourceError(str(exc)) from None
        self.camera = camera
        self.fps = fps
        self.loop = loop
        if hold < 1:
            raise ValueError(f"hold must be at least 1 frame, got {hold}")
        self.hold = hold
        self._orient = {"rotation": rotation, "hflip": hflip, "vflip": vflip}
        self._stop = threading.Event()
        self._status = SourceStatus(camera, on_state)

    def frames(self) -> Iterator[Frame]:
        """Frames in order; returns at the end (unless looping), or once closed."""
        pacer = Pacer(self.fps, self._stop)
        index = 0
        self._status.set(ONLINE)
        log.info("camera %s: playing %d image(s) from %s at %s fps%s%s", self.camera, len(self.paths), self.path,
                 self.fps or "full", f", {self.hold} frames each" if self.hold > 1 else "",
                 ", looping" if self.loop else "")
        while not self._stop.is_set():
            played = 0
            for path in self.paths:
                rgb = self._load(path)
                if rgb is None:
                    continue
                played += 1
                height, width = rgb.shape[:2]
                for _ in range(self.hold):
                    if not pacer.wait():
                        return
                    yield Frame(self.camera, index, time.time(), rgb, width, height)
                    index += 1
            if not self.loop or played == 0:
                break
        self._status.set(ENDED)

    def _load(self, path: Path) -> np.ndarray | None:
        try:
            return orient(load_rgb(path), **self._orient)  # type: ignore[arg-type]
        except ImageError as exc:
            log.warning("camera %s: skipping %s", self.camera, exc)
            return None

    def close(self) -> None:
        """Stop ``frames()`` (also from another thread); idempotent."""
        self._stop.set()
