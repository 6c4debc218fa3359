"""MQTT topic names (Frigate's layout) and the event payload, free of any MQTT library.

Example:
    >>> t = Topics("faceagent")
    >>> t.faces("door"), t.command("door", "detect")
    ('faceagent/door/faces', 'faceagent/door/detect/set')
    >>> t.parse_command("faceagent/door/detect/set")
    ('door', 'detect')
"""

from __future__ import annotations

import itertools
import json
import secrets
from dataclasses import dataclass

from rpi_agent.config.mqtt import MAX_TOPIC_BYTES, topic_problem
from rpi_agent.domain import FaceEvent, TrackedFace

__all__ = ["MAX_TOPIC_BYTES", "Topics", "event_payload", "topic_problem"]

# message_id: 64 random bits drawn once per process, then a counter (32 hex digits, like a UUID's):
# unique across restarts without a random draw (a system call) per message.
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count()
_ENCODER = json.JSONEncoder(separators=(",", ":"))


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


def event_payload(event: FaceEvent) -> bytes:
    """Frigate's event JSON plus a ``message_id`` unique to this message.

    ``after.id`` names the face for its whole life (``new`` … ``end``); ``message_id`` names one
    message, so a consumer can drop the duplicates that at-least-once delivery may bring.
    The bytes are those of ``json.dumps(body, separators=(",", ":"))``, put together from the faces'
    own JSON: a new face is its own ``before`` (encoded once), and the ``before`` of a later event is
    the ``after`` of the one before it, still in :data:`_FACE_JSON`.
    """
    after = _face_json(event.after)
    before = after if event.before is event.after else _face_json(event.before)
    message_id = f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"
    return (f'{{"message_id":"{message_id}","type":{_ENCODER.encode(event.type)},'
            f'"before":{before},"after":{after}}}').encode()


_FACE_JSON: dict[int, tuple[TrackedFace, str]] = {}
"""JSON of recently published faces by identity (the face is held, so its id is not reused)."""
_FACE_JSON_KEPT = 1024


def _face_json(face: TrackedFace) -> str:
    kept = _FACE_JSON.get(id(face))
    if kept is not None and kept[0] is face:
        return kept[1]
    text = _ENCODER.encode(face.to_dict())
    _FACE_JSON[id(face)] = (face, text)
    if len(_FACE_JSON) > _FACE_JSON_KEPT:
        # Oldest first (dicts keep insertion order); another thread may have taken it already.
        _FACE_JSON.pop(next(iter(_FACE_JSON)), None)
    return text
