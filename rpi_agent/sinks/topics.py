"""MQTT topic names and command payload rules (Frigate's layout), free of any MQTT library.

Example:
    >>> t = Topics("faceagent")
    >>> t.faces("door"), t.command("door", "detect")
    ('faceagent/door/faces', 'faceagent/door/detect/set')
    >>> t.parse_command("faceagent/door/detect/set")
    ('door', 'detect')
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass

from rpi_agent.domain import FaceEvent

ON_OFF = ("ON", "OFF")
UNLOCK_WORDS = ("ON", "PRESS", "UNLOCK")
MAX_UNLOCK_SECONDS = 600.0


class PayloadError(ValueError):
    """A command payload that does not fit its feature; the message says what is accepted."""


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic faceagent publishes or subscribes to, under one prefix."""

    prefix: str

    @property
    def available(self) -> str:
        return f"{self.prefix}/available"

    @property
    def events(self) -> str:
        return f"{self.prefix}/events"

    @property
    def stats(self) -> str:
        return f"{self.prefix}/stats"

    def faces(self, camera: str) -> str:
        """Retained number of faces in view."""
        return f"{self.prefix}/{camera}/faces"

    def snapshot(self, camera: str) -> str:
        """Retained JPEG of the latest face."""
        return f"{self.prefix}/{camera}/face/snapshot"

    def command(self, camera: str, feature: str) -> str:
        return f"{self.prefix}/{camera}/{feature}/set"

    def state(self, camera: str, feature: str) -> str:
        return f"{self.prefix}/{camera}/{feature}/state"

    def command_filter(self, camera: str) -> str:
        """Subscription filter for every command of one camera."""
        return f"{self.prefix}/{camera}/+/set"

    def parse_command(self, topic: str) -> tuple[str, str] | None:
        """``(camera, feature)`` of a command topic, or ``None`` if it is not one."""
        head = f"{self.prefix}/"
        if not topic.startswith(head) or not topic.endswith("/set"):
            return None
        parts = topic[len(head):].split("/")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            return None
        return parts[0], parts[1]


def normalise_command(feature: str, payload: bytes) -> str:
    """Check a command payload and return its canonical form.

    ``detect`` takes ``ON``/``OFF``; ``unlock`` takes ``ON``/``PRESS``/``UNLOCK`` (the configured
    pulse) or a number of seconds in (0, 600]. Case and surrounding blanks are ignored.

    Raises:
        PayloadError: Unknown feature, undecodable or unacceptable payload.
    """
    try:
        text = payload.decode("utf-8").strip().upper()
    except UnicodeDecodeError:
        raise PayloadError("payload is not UTF-8 text") from None
    if feature == "detect":
        if text in ON_OFF:
            return text
        raise PayloadError(f"expected ON or OFF, got {text[:40]!r}")
    if feature == "unlock":
        if text in UNLOCK_WORDS:
            return "ON"
        try:
            seconds = float(text)
        except ValueError:
            raise PayloadError(f"expected ON, PRESS or seconds, got {text[:40]!r}") from None
        if not 0.0 < seconds <= MAX_UNLOCK_SECONDS:
            raise PayloadError(f"seconds must be in (0, {MAX_UNLOCK_SECONDS:g}], got {text[:40]!r}")
        return f"{seconds:g}"
    raise PayloadError(f"unknown feature {feature!r} (known: detect, unlock)")


def check_command(
    camera: str, feature: str, payload: bytes, *, cameras: Collection[str], remote_unlock: Collection[str]
) -> str:
    """Validate a whole command (camera, feature, payload) and return the canonical payload.

    Raises:
        PayloadError: Why the command is refused, as one line.
    """
    if camera not in cameras:
        raise PayloadError(f"unknown camera {camera!r}")
    if feature == "unlock" and camera not in remote_unlock:
        raise PayloadError("remote unlock is not enabled for this camera (cameras.gpio.allow_remote_unlock)")
    return normalise_command(feature, payload)


def event_payload(event: FaceEvent) -> bytes:
    """Frigate's event JSON plus a ``message_id`` unique to this message.

    ``after.id`` names the face for its whole life (``new`` … ``end``); ``message_id`` names one
    message, so a consumer can drop the duplicates that at-least-once delivery may bring.
    """
    body = {"message_id": uuid.uuid4().hex, **event.to_dict()}
    return json.dumps(body, separators=(",", ":")).encode()
