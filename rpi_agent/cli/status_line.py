"""One live status line at the bottom of a terminal for ``faceagent run``; log lines scroll above it.

Only used when stdout is a terminal: under systemd or in a pipe the daemon writes plain log lines and
nothing else.

Example:
    >>> line = StatusLine(sys.stdout)  # doctest: +SKIP
    >>> line.install(logging.getLogger())  # doctest: +SKIP
    >>> line.update({"fps": 9.9, "faces": 2, "events": 14, "outbox": 0, "frames": 120})  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Mapping
from typing import TextIO

CLEAR = "\r\033[K"
"""Back to the start of the line and erase it (ANSI; every terminal emulator in use knows it)."""


def format_status(status: Mapping[str, object]) -> str:
    """``9.9 fps | 2 faces | 14 events | outbox 0 | 120 frames`` (outbox only when MQTT is on)."""
    parts = [f"{float(status.get('fps', 0.0)):.1f} fps", f"{status.get('faces', 0)} faces",  # type: ignore[arg-type]
             f"{status.get('events', 0)} events"]
    if status.get("outbox") is not None:
        parts.append(f"outbox {status['outbox']}")
    parts.append(f"{status.get('frames', 0)} frames")
    return " | ".join(parts)


class StatusLine:
    """Owns the last line of the terminal; thread-safe.

    Args:
        stream: The terminal (stdout).
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._text = ""
        self._lock = threading.RLock()

    def update(self, status: Mapping[str, object]) -> None:
        """Redraw the line with new figures."""
        with self._lock:
            self._text = format_status(status)
            self._draw()

    def _draw(self) -> None:
        width = shutil.get_terminal_size((100, 24)).columns
        self._stream.write(CLEAR + self._text[: max(10, width - 1)])
        self._stream.flush()

    def around(self, write: Callable[[], object]) -> None:
        """Run ``write`` (which prints a log line) with the status line out of the way, then redraw it."""
        with self._lock:
            if self._text:
                self._stream.write(CLEAR)
                self._stream.flush()
            write()
            if self._text:
                self._draw()

    def install(self, logger: logging.Logger) -> None:
        """Make ``logger``'s handlers clear the line before a log line and redraw it after."""
        logger.handlers[:] = [_AboveLine(handler, self) for handler in logger.handlers]

    def close(self) -> None:
        """Leave the last figures on screen and move to a fresh line."""
        with self._lock:
            if self._text:
                self._stream.write("\n")
                self._stream.flush()
            self._text = ""


class _AboveLine(logging.Handler):
    """A handler that lets ``inner`` print above the status line."""

    def __init__(self, inner: logging.Handler, line: StatusLine) -> None:
        super().__init__(inner.level)
        self.inner = inner
        self.line = line

    def emit(self, record: logging.LogRecord) -> None:
        self.line.around(lambda: self.inner.handle(record))
