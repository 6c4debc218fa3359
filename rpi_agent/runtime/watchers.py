"""The people watching the daemon: the status page (when enabled) and a terminal's status line (when any).

Both are fed from the main loop at the cost of a reference store per frame; everything they show is
worked out when they ask. Kept out of the daemon so the daemon stays the wiring.

Example:
    >>> watchers = Watchers(config, stats, on_status=line.update)  # doctest: +SKIP
    >>> watchers.start(mqtt=sink); watchers.frame(result, ms=ms); watchers.close()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from rpi_agent.config import AppConfig
from rpi_agent.domain import FrameResult
from rpi_agent.runtime.stats import Every, StatsWindow

if TYPE_CHECKING:
    from rpi_agent.sinks.commands import Command
    from rpi_agent.sinks.mqtt import MqttSink
    from rpi_agent.status import StatusBoard, StatusServer

LINE_INTERVAL = 1.0  # seconds between updates of a terminal's status line
CommandHandler = Callable[[str, str, "Command"], "str | None"]


class Watchers:
    """Status page and status line of one daemon.

    Args:
        config: The whole configuration (``[status]``, the camera names).
        stats: The daemon's running statistics (frames, events, fps).
        on_status: Called about once a second with :meth:`figures`; ``None``: no status line.
    """

    def __init__(self, config: AppConfig, stats: StatsWindow, *,
                 on_status: Callable[[dict[str, object]], None] | None = None) -> None:
        self.config = config
        self.stats = stats
        self.on_status = on_status
        self.board: StatusBoard | None = None
        self.server: StatusServer | None = None
        self.mqtt: MqttSink | None = None
        self._faces: dict[str, int] = {}
        self._line = Every(LINE_INTERVAL, now=0.0)

    def build(self) -> None:
        """Create the page's board and server (not yet serving).

        Raises:
            ConfigError: No token where one is required, or the port cannot be bound.
        """
        if not self.config.status.enabled:
            return
        from rpi_agent.status import StatusBoard, StatusServer

        self.board = StatusBoard([c.name for c in self.config.cameras], events=self.config.status.events)
        self.server = StatusServer(self.config.status, self.board)

    def start(self, *, mqtt: MqttSink | None) -> None:
        self.mqtt = mqtt
        if self.server is not None:
            self.server.start()

    def state(self, camera: str, feature: str, value: str) -> None:
        """A reported state (``source``, ``relay``, ``detect``) of one camera."""
        if self.board is not None:
            self.board.state(camera, feature, value)

    def commands(self, policy: CommandHandler) -> CommandHandler:
        """``policy`` with the states it returns also shown on the page."""

        def handle(camera: str, feature: str, command: Command) -> str | None:
            result = policy(camera, feature, command)
            if result is not None:
                self.state(camera, feature, result)
            return result

        return handle

    def frame(self, result: FrameResult, *, ms: Mapping[str, float] | None) -> None:
        """One processed frame (``ms`` None: faces ended by the clock or at shutdown)."""
        self._faces[result.frame.camera] = len(result.faces)
        if self.board is not None:
            self.board.frame(result, ms=ms)

    def tick(self, now: float) -> None:
        """From the main loop's housekeeping: redraw the status line when due."""
        if self.on_status is not None and self._line.due(now):
            self.on_status(self.figures())

    def figures(self) -> dict[str, object]:
        """For a person watching: fps, faces in view now, events and frames so far, outbox (None: no MQTT)."""
        outbox = self.mqtt.stats()["outbox_waiting"] if self.mqtt is not None else None
        fps = self.stats.snapshot(reset=False)["fps"] or self.stats.last_fps  # just after a report: the last one
        return {"fps": fps, "faces": sum(self._faces.values()), "events": self.stats.total_events,
                "frames": self.stats.total_frames, "outbox": outbox}

    def close(self) -> None:
        """Stop serving the page; idempotent."""
        if self.server is not None:
            self.server.close()
