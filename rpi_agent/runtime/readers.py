"""One reader thread per camera, handing frames to the main loop through a one-slot mailbox.

A live camera must never make the detector lag behind reality: when the main loop is slower than the
camera, the mailbox keeps only the newest frame and counts the ones it replaced. Recorded sources
(files, image folders) instead wait for the slot to empty, so every frame is processed once and a
replay is deterministic.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from rpi_agent.domain import Frame
from rpi_agent.errors import SourceError
from rpi_agent.sources.base import FrameSource

log = logging.getLogger(__name__)


@dataclass
class ReaderState:
    """What the main loop needs to know about one reader (read under the mailbox lock)."""

    frames: int = 0
    dropped: int = 0
    finished: bool = False
    error: str | None = None


class FrameMailbox:
    """A one-slot hand-over shared by all readers, so the main loop can wait on one condition.

    Args:
        cameras: Camera names, in the order the main loop serves them.
    """

    def __init__(self, cameras: list[str]) -> None:
        self._cond = threading.Condition()
        self._slots: dict[str, Frame | None] = dict.fromkeys(cameras)
        self.state: dict[str, ReaderState] = {name: ReaderState() for name in cameras}
        self._closed = False

    def put(self, frame: Frame, *, block: bool) -> bool:
        """Offer a frame; with ``block`` wait for the slot to empty, else replace what is there.

        Returns:
            False once the mailbox is closed (the reader should stop).
        """
        with self._cond:
            if block:
                self._cond.wait_for(lambda: self._closed or self._slots[frame.camera] is None)
            if self._closed:
                return False
            state = self.state[frame.camera]
            if self._slots[frame.camera] is not None:
                state.dropped += 1
            self._slots[frame.camera] = frame
            state.frames += 1
            self._cond.notify_all()
            return True

    def finish(self, camera: str, error: str | None = None) -> None:
        """Mark a reader as ended (end of stream, or an error retrying cannot fix)."""
        with self._cond:
            self.state[camera].finished = True
            self.state[camera].error = error
            self._cond.notify_all()

    def take(self, timeout: float) -> list[Frame]:
        """Wait up to ``timeout`` s for frames; return and clear every filled slot, in camera order."""
        with self._cond:
            self._cond.wait_for(self._ready, timeout=timeout)
            frames = [f for f in self._slots.values() if f is not None]
            for frame in frames:
                self._slots[frame.camera] = None
            if frames:
                self._cond.notify_all()
            return frames

    def _ready(self) -> bool:
        return self._closed or any(f is not None for f in self._slots.values()) or self.all_finished_locked()

    def all_finished_locked(self) -> bool:
        return all(s.finished for s in self.state.values()) and all(f is None for f in self._slots.values())

    def all_finished(self) -> bool:
        """Every reader ended and every frame was taken."""
        with self._cond:
            return self.all_finished_locked()

    def close(self) -> None:
        """Wake every waiting reader and the main loop; later puts are refused."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class CameraReader:
    """Runs ``source.frames()`` on its own thread and feeds the mailbox.

    Args:
        source: The frame source (its ``camera`` names the slot).
        mailbox: Where frames go.
        live: Drop stale frames (cameras, streams) rather than wait (files, folders).
        max_frames: Stop after this many frames (``None``: until the source ends).
    """

    def __init__(
        self, source: FrameSource, mailbox: FrameMailbox, *, live: bool, max_frames: int | None = None
    ) -> None:
        self.source = source
        self.mailbox = mailbox
        self.live = live
        self.max_frames = max_frames
        self._thread = threading.Thread(target=self._run, name=f"reader-{source.camera}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        camera = self.source.camera
        error: str | None = None
        count = 0
        try:
            for frame in self.source.frames():
                if not self.mailbox.put(frame, block=not self.live):
                    break
                count += 1
                if self.max_frames is not None and count >= self.max_frames:
                    break
        except SourceError as exc:
            error = str(exc)
            log.error("camera %s: source failed: %s", camera, exc)
        except Exception as exc:  # a reader must always report its end, or the main loop waits forever
            error = f"{type(exc).__name__}: {exc}"
            log.exception("camera %s: source crashed", camera)
        finally:
            self.mailbox.finish(camera, error)
            log.info("camera %s: reader ended after %d frame(s)%s", camera, count, f" ({error})" if error else "")

    def stop(self, timeout: float = 5.0) -> None:
        """Close the source (which ends ``frames()``) and join the thread."""
        self.mailbox.close()
        try:
            self.source.close()
        except OSError as exc:
            log.warning("camera %s: closing the source failed: %s", self.source.camera, exc)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("camera %s: reader did not stop within %.0f s", self.source.camera, timeout)
