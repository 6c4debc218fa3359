"""The source string, parsed once into a typed :class:`SourceSpec`.

| string | kind | live |
|---|---|---|
| ``picamera``, ``picamera:1`` | ``picamera`` | yes |
| ``k210:/dev/ttyUSB0?baud=115200`` | ``k210`` (the board detects faces itself) | yes |
| ``0``, ``/dev/video0`` | ``device`` (USB/V4L2 through OpenCV) | yes |
| ``rtsp://...``, ``http://...`` | ``stream`` | yes |
| anything else | ``path``: a video file, a folder of images or one image | no |

Parsing is pure string work: whether a ``path`` is a video or images is decided when the source
is opened, because only the file system can tell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs

from rpi_agent.credentials import redact_url
from rpi_agent.errors import ConfigError

SourceKind = Literal["picamera", "k210", "device", "stream", "path"]

STREAM_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://")
K210_BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1500000)
K210_DEFAULT_BAUD = 115200
MAX_SOURCE_LENGTH = 4096  # longer than any real device, URL or path (PATH_MAX is 4096 on Linux)


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """Where one camera's frames come from.

    Attributes:
        text: The string as configured (may hold a stream password: log :attr:`shown`).
        kind: See the module table.
        index: ``picamera``: camera number; ``device``: USB index, or -1 for a ``/dev`` path.
        port: ``k210``: the serial device.
        baud: ``k210``: the baud rate.

    Example:
        >>> parse_source("k210:/dev/ttyUSB0?baud=921600").port, parse_source("0").live
        ('/dev/ttyUSB0', True)
    """

    text: str
    kind: SourceKind
    index: int = -1
    port: str = ""
    baud: int = K210_DEFAULT_BAUD

    @property
    def live(self) -> bool:
        """A live feed (stale frames are dropped) rather than a recording (every frame is played)."""
        return self.kind != "path"

    @property
    def detects_faces(self) -> bool:
        """Whether the source reports faces itself (a K210 board), so needs no detector."""
        return self.kind == "k210"

    @property
    def path(self) -> Path:
        """``path`` kind: the file or folder, ``~`` expanded."""
        return Path(self.text).expanduser()

    @property
    def shown(self) -> str:
        """The string fit for logs: a stream's password replaced."""
        return redact_url(self.text)


def parse_source(text: str) -> SourceSpec:
    """Parse a source string (see the module table).

    Raises:
        ConfigError: An empty or over-long string, a malformed ``picamera:`` or ``k210:`` spec.
    """
    if not text.strip():
        raise ConfigError("source: empty; expected picamera, a device, a URL, a file or a folder")
    if len(text) > MAX_SOURCE_LENGTH or "\0" in text:
        raise ConfigError(f"source: {redact_url(text[:60])!r}... is not a device, URL or path "
                          f"(over {MAX_SOURCE_LENGTH} characters or a NUL byte)")
    if text == "picamera" or text.startswith("picamera:"):
        return SourceSpec(text, "picamera", index=_picamera_index(text))
    if text.startswith("k210:"):
        port, baud = _k210_port(text)
        return SourceSpec(text, "k210", port=port, baud=baud)
    if text.isascii() and text.isdigit():
        return SourceSpec(text, "device", index=int(text))
    if text.startswith("/dev/"):
        return SourceSpec(text, "device")
    if text.lower().startswith(STREAM_PREFIXES):
        return SourceSpec(text, "stream")
    return SourceSpec(text, "path")


def _picamera_index(text: str) -> int:
    _, _, index = text.partition(":")
    if not index:
        return 0
    if not (index.isascii() and index.isdigit()):
        raise ConfigError(f"source {text!r}: expected picamera or picamera:N with N a camera number")
    return int(index)


def _k210_port(text: str) -> tuple[str, int]:
    port, _, query = text[len("k210:"):].partition("?")
    if not port:
        raise ConfigError(f"source {text!r}: missing serial port, e.g. k210:/dev/ttyUSB0")
    params = parse_qs(query, keep_blank_values=True, strict_parsing=False)
    unknown = set(params) - {"baud"}
    if unknown:
        raise ConfigError(f"source {text!r}: unknown option(s) {', '.join(sorted(unknown))}; only baud is known")
    baud_text = params.get("baud", [str(K210_DEFAULT_BAUD)])[-1]
    if not (baud_text.isascii() and baud_text.isdigit()) or int(baud_text) not in K210_BAUDS:
        raise ConfigError(f"source {text!r}: baud must be one of {', '.join(map(str, K210_BAUDS))}")
    return port, int(baud_text)
