"""What the daemon does with an MQTT command the sink has checked: the command policy.

Runs on the MQTT thread, so it only flips a flag or queues work for the main loop; it never
touches a pin itself. The GPIO side of an unlock is checked again here, so a sink that let a
command through by mistake still cannot open a door that the config keeps closed.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from rpi_agent.sinks.commands import Command, DetectCommand, UnlockCommand

if TYPE_CHECKING:
    from rpi_agent.config import CameraConfig
    from rpi_agent.runtime.pipeline import Pipeline
    from rpi_agent.sinks.gpio import GpioSink

log = logging.getLogger(__name__)


class CommandPolicy:
    """Routes ``<camera>/<feature>/set`` commands to the pipelines and the relay.

    Args:
        cameras: Camera configs by name.
        pipelines: Pipelines by camera name (``detect`` switches them).
        gpio: GPIO sinks by camera name (``unlock`` pulses their relay).
    """

    def __init__(self, cameras: Mapping[str, CameraConfig], pipelines: Mapping[str, Pipeline],
                 gpio: Mapping[str, GpioSink]) -> None:
        self._cameras = cameras
        self._pipelines = pipelines
        self._gpio = gpio
        self._work: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()

    def __call__(self, camera: str, feature: str, command: Command) -> str | None:
        """Act on a parsed command; returns the state to echo on ``.../state``, or ``None``."""
        if isinstance(command, DetectCommand) and camera in self._pipelines:
            self._pipelines[camera].set_detect(command.on)
            log.info("camera %s: detection %s (MQTT command)", camera, command.state)
            return command.state
        if isinstance(command, UnlockCommand):
            self._unlock(camera, command)
            return None  # the relay reports UNLOCKED/LOCKED itself on <camera>/relay/state
        log.warning("refused MQTT command %s/%s %r", camera, feature, str(command)[:40])
        return None

    def _unlock(self, camera: str, command: UnlockCommand) -> None:
        sink = self._gpio.get(camera)
        cfg = self._cameras.get(camera)
        if sink is None or cfg is None or not cfg.gpio.allow_remote_unlock or cfg.gpio.relay_pin is None:
            log.warning("camera %s: remote unlock refused (not enabled in config)", camera)
            return
        seconds = cfg.gpio.relay_seconds if command.seconds is None else command.seconds
        self._work.put(lambda: sink.unlock(seconds))
        log.info("camera %s: remote unlock for %.1f s (MQTT command)", camera, seconds)

    def run_pending(self) -> None:
        """Carry out the queued work; call it on the main thread."""
        while True:
            try:
                work = self._work.get_nowait()
            except queue.Empty:
                return
            work()
