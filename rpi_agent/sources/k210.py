"""Faces detected by a K210 board (``k210/main.py``), read as JSON lines from a serial port.

The board sends one line per camera frame, ``{"t": ms, "faces": [[x1, y1, x2, y2, score], ...]}``
with boxes in its 320x240 frame (a landmark model adds ``"landmarks": [[[x, y] x 5], ...]``, one
entry per face), or ``{"t": ms, "error": "..."}`` when it has a problem. Lines
that are not either (boot messages on the USB serial, noise, cut lines) are counted and
skipped. A disconnected board (USB unplugged, reset) is reopened with exponential backoff.

Example:
    >>> with K210Source("/dev/ttyUSB0", baud=115200) as src:  # doctest: +SKIP
    ...     for timestamp, faces in src:
    ...         print(timestamp, faces)
"""

from __future__ import annotations

import errno
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rpi_agent.domain import Detection, Frame
from rpi_agent.errors import ProtocolError, SourceError
from rpi_agent.sources.common import ENDED, ONLINE, RETRYING, Backoff, SourceStatus, StateCallback

log = logging.getLogger(__name__)

FRAME_WIDTH = 320
FRAME_HEIGHT = 240
MAX_LINE = 16384  # bytes; a longer run without a newline is noise, not a frame
LANDMARK_POINTS = 5
# Board errors no reset or retry can fix (wrong kmodel, wrong firmware, no card): the source
# stops with a SourceError naming the cause instead of waiting for frames that never come.
FATAL_BOARD_ERRORS = {
    "kmodel_version": "wrong kmodel version",
    "kmodel_truncated": "truncated kmodel",
    "kmodel_format": "not a kmodel",
    "kmodel_outputs": "not the face model",
    "kmodel_load": "firmware cannot load the kmodel",
    "no_kpu": "firmware without KPU support",
    "kpu_api": "firmware KPU API cannot read the model's outputs",
    "no_sd": "no SD card",
}


@dataclass(slots=True)
class K210Counters:
    """What the source has seen since it was created.

    Attributes:
        lines: Complete lines received.
        frames: Valid frame lines (with or without faces).
        malformed: Lines skipped as not valid (garbage, cut, out of range).
        board_errors: ``{"error": ...}`` lines the board sent.
        reconnects: Times the port was reopened after a failure.
    """

    lines: int = 0
    frames: int = 0
    malformed: int = 0
    board_errors: int = 0
    reconnects: int = 0


class FrameError(ProtocolError):
    """A frame line (JSON with a "faces" list) whose content is invalid: a board or protocol fault,
    logged as a warning, unlike the boot messages and noise that share the USB serial."""


def _finite(values: list[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def _face(item: Any, width: int, height: int) -> Detection:
    if not isinstance(item, list) or len(item) != 5:
        raise ProtocolError("a face must be [x1, y1, x2, y2, score]")
    if not _finite(item):
        raise ProtocolError("face values must be finite numbers")
    x1, y1, x2, y2, score = (float(v) for v in item)
    if not (0.0 <= x1 <= x2 <= width and 0.0 <= y1 <= y2 <= height):
        raise ProtocolError(f"box {item[:4]} outside the {width}x{height} frame")
    if not 0.0 <= score <= 1.0:
        raise ProtocolError(f"score {score} outside [0, 1]")
    return Detection((x1, y1, x2, y2), score)


def _points(item: Any, index: int) -> tuple[tuple[float, float], ...]:
    # Points may lie outside the frame (a face cut by its edge), so only their form is checked.
    if not (isinstance(item, list) and len(item) == LANDMARK_POINTS
            and all(isinstance(p, list) and len(p) == 2 and _finite(p) for p in item)):
        raise ProtocolError(f"landmarks of face {index} must be five finite [x, y] points")
    return tuple((float(p[0]), float(p[1])) for p in item)


def _with_landmarks(faces: list[Detection], landmarks: Any) -> list[Detection]:
    if not isinstance(landmarks, list) or len(landmarks) != len(faces):
        count = len(landmarks) if isinstance(landmarks, list) else "no list"
        raise ProtocolError(f'"landmarks" must hold one entry per face ({len(faces)}), got {count}')
    return [Detection(face.box, face.score, _points(points, i))
            for i, (face, points) in enumerate(zip(faces, landmarks, strict=True))]


def parse_line(line: bytes, *, width: int = FRAME_WIDTH, height: int = FRAME_HEIGHT) -> list[Detection] | str:
    """Decode one board line.

    Returns:
        The faces of a frame line (with their five landmarks when the line has them), or the
        message of an error line.

    Raises:
        ProtocolError: Anything else, including landmarks that are not five finite points per face.
    """
    try:
        msg = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not JSON ({exc})") from None
    if not isinstance(msg, dict):
        raise ProtocolError("not a JSON object")
    if isinstance(msg.get("error"), str):
        return msg["error"]
    faces = msg.get("faces")
    if not isinstance(faces, list):
        raise ProtocolError('no "faces" list')
    try:
        found = [_face(item, width, height) for item in faces]
        return _with_landmarks(found, msg["landmarks"]) if "landmarks" in msg else found
    except ProtocolError as exc:
        raise FrameError(str(exc)) from None


def board_error_code(line: bytes) -> str | None:
    """The ``code`` of a board error line (main.py sends one with every error), if any."""
    try:
        msg = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    code = msg.get("code") if isinstance(msg, dict) else None
    return code if isinstance(code, str) else None


def _open_pyserial(port: str, baud: int, timeout: float) -> Any:
    try:
        import serial
    except ImportError:
        raise SourceError("pyserial is not installed: pip install pyserial") from None
    return serial.Serial(port, baud, timeout=timeout)


class K210Source:
    """Detections from a K210 board on a serial port.

    Iterating yields ``(timestamp, faces)`` per board frame: the host's wall-clock time the
    line arrived, and the faces in the board's frame pixels. :meth:`frames` yields the same as
    :class:`rpi_agent.domain.Frame` objects (``rgb=None``, ``detections`` filled) for the
    pipeline. Both end when :meth:`close` is called, from any thread.

    Args:
        port: Serial device, e.g. ``/dev/ttyUSB0`` (a stable ``/dev/serial/by-id/...`` link
            survives re-plugging).
        baud: Baud rate the board's script sends at.
        camera: Camera name put in frames.
        width: Width of the board's frame (coordinate space of the boxes).
        height: Height of the board's frame.
        read_timeout: Seconds a read waits, which bounds how late ``close()`` is noticed.
        retry_initial: Seconds before the first reopen attempt after a failure; doubles each time.
        retry_max: Upper bound of the reopen delay.
        opener: ``(port, baud, timeout) -> serial-like`` (pyserial's ``Serial`` by default).
        on_state: ``on_state(camera, "source", value)`` on ``ONLINE`` / ``RETRYING`` / ``ENDED``.
    """

    live = True

    def __init__(
        self,
        port: str,
        *,
        baud: int = 115200,
        camera: str = "k210",
        width: int = FRAME_WIDTH,
        height: int = FRAME_HEIGHT,
        read_timeout: float = 0.5,
        retry_initial: float = 0.5,
        retry_max: float = 10.0,
        opener: Callable[[str, int, float], Any] | None = None,
        on_state: StateCallback | None = None,
    ) -> None:
        self.port = port
        self.baud = baud
        self.camera = camera
        self.width = width
        self.height = height
        self.read_timeout = read_timeout
        self._backoff = Backoff(retry_initial, retry_max)
        self.counters = K210Counters()
        self._opener = opener or _open_pyserial
        self._serial: Any = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._status = SourceStatus(camera, on_state)

    def __enter__(self) -> K210Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[float, list[Detection]]]:
        return self.detections()

    def detections(self) -> Iterator[tuple[float, list[Detection]]]:
        """``(timestamp, faces)`` per valid frame line, until :meth:`close`.

        Raises:
            SourceError: The board reported a problem only the user can fix (see FATAL_BOARD_ERRORS).
        """
        for line in self._lines():
            stamp = time.time()
            try:
                result = parse_line(line, width=self.width, height=self.height)
            except ProtocolError as exc:
                self.counters.malformed += 1
                level = logging.WARNING if isinstance(exc, FrameError) else logging.DEBUG
                log.log(level, "%s: skipped line (%s): %r", self.port, exc, line[:80])
                continue
            if isinstance(result, str):
                self.counters.board_errors += 1
                code = board_error_code(line)
                if code in FATAL_BOARD_ERRORS:
                    raise SourceError(f"{self.port}: K210 board: {FATAL_BOARD_ERRORS[code]}: {result}")
                log.warning("%s: board reports: %s", self.port, result)
                continue
            self.counters.frames += 1
            yield stamp, result

    def frames(self) -> Iterator[Frame]:
        """The detections as pipeline frames (no pixels)."""
        for index, (stamp, faces) in enumerate(self.detections()):
            yield Frame(self.camera, index, stamp, None, self.width, self.height, reported=tuple(faces))

    def close(self) -> None:
        """Stop iterating and release the port; idempotent, callable from another thread."""
        self._stop.set()
        self._drop()
        self._status.set(ENDED)

    def _drop(self) -> None:
        with self._lock:
            ser, self._serial = self._serial, None
        if ser is not None:
            try:
                ser.close()
            except OSError as exc:
                log.debug("%s: error closing: %s", self.port, exc)

    def _connect(self) -> bool:
        try:
            ser = self._opener(self.port, self.baud, self.read_timeout)
        except OSError as exc:
            # pyserial's SerialException carries the errno but is no PermissionError subclass.
            if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
                raise SourceError(f"{self.port}: permission denied (add the user to the dialout group)") from None
            log.warning("%s: cannot open (%s); retrying", self.port, exc)
            self._status.set(RETRYING)
            return False
        with self._lock:
            self._serial = ser
        log.info("%s: connected at %d baud", self.port, self.baud)
        self._status.set(ONLINE)
        return True

    def _read(self) -> bytes | None:
        """Bytes from the port (possibly none on timeout); ``None`` after a failure."""
        ser = self._serial
        if ser is None:
            return None
        try:
            return bytes(ser.read(ser.in_waiting or 1))
        except (OSError, TypeError, AttributeError) as exc:
            # pyserial raises SerialException (an OSError) on unplug, and TypeError or
            # AttributeError when close() from another thread races with a read.
            if not self._stop.is_set():
                log.warning("%s: disconnected (%s); reconnecting", self.port, exc)
                self._status.set(RETRYING)
            self._drop()
            return None

    def _lines(self) -> Iterator[bytes]:
        buf = bytearray()
        connected_once = False
        while not self._stop.is_set():
            if self._serial is None:
                if not self._connect():
                    self._stop.wait(self._backoff.next_delay())
                    continue
                if connected_once:
                    self.counters.reconnects += 1
                connected_once = True
                self._backoff.reset()
                buf.clear()  # a line cut by the disconnect is not worth a malformed count
            chunk = self._read()
            if not chunk:
                continue
            buf += chunk
            yield from self._split(buf)

    def _split(self, buf: bytearray) -> Iterator[bytes]:
        while (end := buf.find(b"\n")) >= 0:
            line = bytes(buf[:end]).strip()
            del buf[: end + 1]
            if line:
                self.counters.lines += 1
                yield line
        if len(buf) > MAX_LINE:
            self.counters.malformed += 1
            log.debug("%s: %d bytes without a newline dropped", self.port, len(buf))
            buf.clear()
