"""MQTT commands (``<prefix>/<camera>/<feature>/set``): checked here, then passed to the daemon.

No MQTT library: the sink hands over topic, payload and the retain flag. Every refusal is one
warning line; nothing a publisher sends can raise out of :meth:`CommandRouter.handle`.

Example:
    >>> router = CommandRouter(Topics("faceagent"), cameras=["door"], remote_unlock=(),
    ...                        on_command=lambda c, f, p: p, on_state=print)
    >>> router.handle("faceagent/door/detect/set", b"off", retained=False)
    door detect OFF
    True
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from rpi_agent.sinks.topics import PayloadError, Topics, check_command

logger = logging.getLogger(__name__)

CommandHandler = Callable[[str, str, str], "str | None"]
StateHandler = Callable[[str, str, str], None]


class CommandRouter:
    """Validates commands and routes good ones to ``on_command``; echoes the state it returns.

    Args:
        topics: Topic names.
        cameras: Known cameras.
        remote_unlock: Cameras that accept ``unlock``.
        on_command: ``(camera, feature, checked payload) -> new state or None`` (the daemon).
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
            logger.warning("MQTT: refused retained command on %s (publish commands without retain)", topic)
            return True
        try:
            value = check_command(camera, feature, payload, cameras=self.cameras, remote_unlock=self.remote_unlock)
        except PayloadError as exc:
            logger.warning("MQTT: refused %s command for %s: %s", feature, camera, exc)
            return True
        try:
            state = self._on_command(camera, feature, value)
        except Exception:  # the daemon's handler failing must not take the MQTT thread down
            logger.exception("MQTT: command %s=%s for %s failed", feature, value, camera)
            return True
        if state is not None:
            self._on_state(camera, feature, state)
        return True
