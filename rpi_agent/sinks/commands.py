"""MQTT commands (``<prefix>/<camera>/<feature>/set``): parsed once here into a typed command.

No MQTT library: the sink hands over topic, payload and the retain flag. Every refusal is one
warning line; nothing a publisher sends can raise out of :meth:`CommandRouter.handle`.

Example:
    >>> parse_payload("unlock", b" 2.5 ")
    UnlockCommand(seconds=2.5)
    >>> router = CommandRouter(Topics("faceagent"), cameras=["door"], remote_unlock=(),
    ...                        on_command=lambda c, f, cmd: cmd.state, on_state=print)
    >>> router.handle("faceagent/door/detect/set", b"off", retained=False)
    door detect OFF
    True
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

from rpi_agent.sinks.topics import Topics

logger = logging.getLogger(__name__)

ON_OFF = ("ON", "OFF")
UNLOCK_WORDS = ("ON", "PRESS", "UNLOCK")
MIN_UNLOCK_SECONDS = 0.1
MAX_UNLOCK_SECONDS = 600.0
SECONDS = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3})?", re.ASCII)
"""A plain decimal: digits, at most one point, no sign, exponent, ``_`` or non-ASCII digits."""
BLANKS = " \t\r\n"


class PayloadError(ValueError):
    """A command payload that does not fit its feature; the message says what is accepted."""


@dataclass(frozen=True, slots=True)
class DetectCommand:
    """``detect``: turn detection on or off."""

    on: bool

    @property
    def state(self) -> str:
        """The state to echo on ``.../detect/state``."""
        return "ON" if self.on else "OFF"

    def __str__(self) -> str:
        return self.state


@dataclass(frozen=True, slots=True)
class UnlockCommand:
    """``unlock``: pulse the relay for ``seconds``, or for the camera's ``relay_seconds`` if ``None``."""

    seconds: float | None = None

    def __str__(self) -> str:
        return "ON" if self.seconds is None else f"{self.seconds:g}"


Command = DetectCommand | UnlockCommand
CommandHandler = Callable[[str, str, Command], "str | None"]
StateHandler = Callable[[str, str, str], None]


def parse_payload(feature: str, payload: bytes) -> Command:
    """The one parser of command payloads; case and surrounding blanks are ignored.

    ``detect`` takes ``ON``/``OFF``. ``unlock`` takes ``ON``/``PRESS``/``UNLOCK`` (the configured
    pulse) or a plain decimal number of seconds from 0.1 to 600 with at most three digits after
    the point (``2``, ``2.5``); ``1e1``, ``1_0``, ``+2``, ``nan`` or ``٣`` are refused.

    Raises:
        PayloadError: Unknown feature, undecodable or unacceptable payload.
    """
    try:
        text = payload.decode("utf-8").strip(BLANKS).upper()
    except UnicodeDecodeError:
        raise PayloadError("payload is not UTF-8 text") from None
    if feature == "detect":
        if text in ON_OFF:
            return DetectCommand(on=text == "ON")
        raise PayloadError(f"expected ON or OFF, got {text[:40]!r}")
    if feature == "unlock":
        if text in UNLOCK_WORDS:
            return UnlockCommand()
        if not SECONDS.fullmatch(text):
            raise PayloadError(f"expected ON, PRESS or seconds (a plain decimal such as 2.5), got {text[:40]!r}")
        seconds = float(text)
        if not MIN_UNLOCK_SECONDS <= seconds <= MAX_UNLOCK_SECONDS:
            raise PayloadError(f"seconds must be in [{MIN_UNLOCK_SECONDS:g}, {MAX_UNLOCK_SECONDS:g}], got {text!r}")
        return UnlockCommand(seconds=seconds)
    raise PayloadError(f"unknown feature {feature[:40]!r} (known: detect, unlock)")


def check_command(
    camera: str, feature: str, payload: bytes, *, cameras: Collection[str], remote_unlock: Collection[str]
) -> Command:
    """Validate a whole command (camera, feature, payload) and return it parsed.

    Raises:
        PayloadError: Why the command is refused, as one line.
    """
    if camera not in cameras:
        raise PayloadError(f"unknown camera {camera[:64]!r}")
    if feature == "unlock" and camera not in remote_unlock:
        raise PayloadError("remote unlock is not enabled for this camera (cameras.gpio.allow_remote_unlock)")
    return parse_payload(feature, payload)


class CommandRouter:
    """Validates commands and routes good ones to ``on_command``; echoes the state it returns.

    Args:
        topics: Topic names.
        cameras: Known cameras.
        remote_unlock: Cameras that accept ``unlock``.
        on_command: ``(camera, feature, command) -> new state or None`` (the daemon).
        on_state: ``(camera, feature, state)``, called with a state ``on_command`` returned.
    """

    def __init__(self, topics: Topics, *, cameras: Collection[str], remote_unlock: Collection[str],
                 on_command: CommandHandler, on_state: StateHandler) -> None:
        self.topics = topics
        self.cameras = frozenset(cameras)
        self.remote_unlock = frozenset(remote_unlock)
        self._on_command = on_command
        self._on_state = on_state

    def handle(self, topic: str, payload: bytes, *, retained: bool) -> bool:
        """Act on one message; returns whether ``topic`` was a command topic at all."""
        parsed = self.topics.parse_command(topic)
        if parsed is None:
            return False
        camera, feature = parsed
        if retained:
            # A retained command would fire again on every reconnect (an unlock!): refuse it.
            logger.warning("MQTT: refused retained command on %s (publish commands without retain)", topic[:200])
            return True
        try:
            command = check_command(camera, feature, payload, cameras=self.cameras, remote_unlock=self.remote_unlock)
        except PayloadError as exc:
            logger.warning("MQTT: refused %s command for %s: %s", feature[:40], camera[:64], exc)
            return True
        try:
            state = self._on_command(camera, feature, command)
        except Exception:  # the daemon's handler failing must not take the MQTT thread down
            logger.exception("MQTT: command %s=%s for %s failed", feature, command, camera)
            return True
        if state is not None:
            self._on_state(camera, feature, state)
        return True
