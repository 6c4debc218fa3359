"""The daemon: builds every stage from the config, runs the main loop, shuts down in order.

This is the only module that picks concrete adapters (sources, detector, MQTT and GPIO sinks).
Threads: one reader per camera (see :mod:`rpi_agent.runtime.readers`), the delivery thread that
stores and logs the events (:mod:`rpi_agent.runtime.handoff`), paho's network thread and, when
enabled, the status page's server; the pipelines, GPIO and the rest of the sinks run on the main thread. The relay is
fail-secure: every exit path (signal, end of input, exception) closes the GPIO sinks, which leaves the
relay LOCKED.

Example:
    >>> Daemon(load_config("config.toml"), gpio_factory="mock").run()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rpi_agent import __version__
from rpi_agent.config import AppConfig, DetectorConfig
from rpi_agent.detection.base import Detector, ReportedFaces
from rpi_agent.domain import FaceEvent, FrameResult
from rpi_agent.errors import ConfigError, SourceError
from rpi_agent.runtime.commands import CommandPolicy
from rpi_agent.runtime.handoff import EventHandoff
from rpi_agent.runtime.notify import Notifier
from rpi_agent.runtime.readers import CameraReader, FrameMailbox
from rpi_agent.runtime.signals import exit_status, signal_name, stop_handlers
from rpi_agent.runtime.stats import Every, StatsWindow, collect_stats, format_line
from rpi_agent.runtime.watchers import Watchers
from rpi_agent.sources import parse_source

if TYPE_CHECKING:
    from rpi_agent.runtime.pipeline import Pipeline
    from rpi_agent.sinks.gpio import GpioSink
    from rpi_agent.sinks.mqtt import MqttSink

log = logging.getLogger(__name__)

LOOP_TIMEOUT = 0.25  # seconds the main loop waits for frames before doing its housekeeping
STATUS_INTERVAL = 5.0
SWITCH_INTERVAL = 0.0005
"""GIL switch interval while running (Python's default: 5 ms). The frame loop gives the GIL up in
every inference and JPEG decode; when one returns while another thread holds the GIL, it waits for
that thread to yield, up to this long: at 5 ms, longer than a whole frame (docs/performance.md)."""


class Daemon:
    """Cameras → pipelines → sinks, supervised by systemd.

    Args:
        config: The validated configuration.
        gpio_factory: gpiozero pin factory name (``"mock"`` off a Pi); ``None``: gpiozero's default.
        max_frames: Stop after this many frames per camera (demos, tests).
        notifier: systemd notifier; by default from the environment.
        on_status: Called about once a second with figures for a terminal's status line.
    """

    def __init__(
        self,
        config: AppConfig,
        *,
        gpio_factory: str | None = None,
        max_frames: int | None = None,
        notifier: Notifier | None = None,
        on_status: Callable[[dict[str, object]], None] | None = None,
    ) -> None:
        self.config = config
        self.gpio_factory = gpio_factory
        self.max_frames = max_frames
        self.notifier = notifier or Notifier.from_env()
        self.stop_event = threading.Event()
        self.stop_signal: int | None = None
        self.mailbox = FrameMailbox([c.name for c in config.cameras])
        self.stats = StatsWindow()
        self.watchers = Watchers(config, self.stats, on_status=on_status)
        self.pipelines: dict[str, Pipeline] = {}
        self.gpio: dict[str, GpioSink] = {}
        self.mqtt: MqttSink | None = None
        self.handoff: EventHandoff | None = None
        self.readers: list[CameraReader] = []
        self.commands = CommandPolicy({c.name: c for c in config.cameras}, self.pipelines, self.gpio)
        self._live: set[str] = set()
        self._stats_timer = self._status_timer = Every(0.0, now=0.0)

    # -- building -------------------------------------------------------------------------------
    def _build_gpio(self) -> None:
        wired = [c for c in self.config.cameras if c.gpio.enabled]
        if not wired:
            return
        from rpi_agent.sinks.gpio import GpioSink

        for camera in wired:
            self.gpio[camera.name] = GpioSink(
                camera.gpio, camera=camera.name, pin_factory=self.gpio_factory, on_state=self._on_state
            )

    def _build_mqtt(self) -> None:
        if not self.config.mqtt.enabled:
            log.info("MQTT disabled in config: events are only logged")
            return
        from rpi_agent.sinks.mqtt import MqttSink

        cameras = self.config.cameras
        state_dir = self.config.paths.resolved_state_dir()
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"paths.state_dir: cannot create {state_dir}: {exc.strerror or exc}") from None
        self.mqtt = MqttSink(
            self.config.mqtt,
            cameras=[c.name for c in cameras],
            outbox_dir=state_dir,
            on_command=self.watchers.commands(self.commands),
            sw_version=__version__,
            snapshots={c.name: c.snapshot for c in cameras},
            remote_unlock=[c.name for c in cameras if c.gpio.allow_remote_unlock and c.gpio.relay_pin is not None],
            relays=[c.name for c in cameras if c.gpio.relay_pin is not None],
        )
        self.handoff = EventHandoff(store=self.mqtt.store_events, stored=log_events)

    def _build_cameras(self) -> None:
        from rpi_agent.runtime.pipeline import Pipeline
        from rpi_agent.sources import DEFAULT_LORES, open_source

        specs = {c.name: parse_source(c.source) for c in self.config.cameras}
        shared: Detector | None = None
        for camera in self.config.cameras:
            spec = specs[camera.name]
            if spec.detects_faces:
                detector: Detector = ReportedFaces()
            else:
                shared = shared or build_face_detector(self.config.detector)
                detector = shared
            self.pipelines[camera.name] = Pipeline(camera, detector, min_score=self.config.min_score(camera))
            source = open_source(spec, camera, lores_size=detector.input_size or DEFAULT_LORES,
                                 on_state=self._on_state)
            if source.live:
                self._live.add(camera.name)
            self.readers.append(CameraReader(source, self.mailbox, live=source.live, max_frames=self.max_frames))

    # -- callbacks from other threads -----------------------------------------------------------
    def _on_state(self, camera: str, feature: str, value: str) -> None:
        log.info("camera %s: %s %s", camera, feature, value)
        self.watchers.state(camera, feature, value)
        if self.mqtt is not None:
            self.mqtt.publish_state(camera, feature, value)

    def _on_signal(self, signum: int) -> None:
        log.info("%s received: stopping", signal_name(signum))
        self.stop_signal = self.stop_signal or signum  # the first one sets the exit status
        self.stop_event.set()

    # -- running --------------------------------------------------------------------------------
    def run(self) -> int:
        """Build, run until a signal or the end of every source, then shut down in order.

        Returns:
            0 after every source ended or a SIGTERM/SIGINT; 128 + N after another signal N (SIGHUP: 129,
            so systemd's ``Restart=on-failure`` starts it again): :mod:`rpi_agent.runtime.signals`.

        Raises:
            SourceError: A camera failed in a way its retries could not fix (after the shutdown).
            Exception: Anything else that went wrong, also after the shutdown (relay locked first).
        """
        switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        with stop_handlers(self._on_signal):
            try:
                self._start()
                self._loop()
            finally:
                self._shutdown()
                sys.setswitchinterval(switch)
        failed = [f"camera {name}: {s.error}" for name, s in self.mailbox.state.items() if s.error]
        if failed and not self.stop_event.is_set():
            # Exit non-zero so systemd's Restart=on-failure tries the camera again.
            raise SourceError("; ".join(failed))
        return exit_status(self.stop_signal)

    def _start(self) -> None:
        # GPIO first, so the relay is held LOCKED before anything else can go wrong.
        self._build_gpio()
        self._build_mqtt()
        self.watchers.build()
        self._build_cameras()
        self._publish_initial_states()
        if self.mqtt is not None:
            self.mqtt.start()
        if self.handoff is not None:
            self.handoff.start()
        self.watchers.start(mqtt=self.mqtt)
        for reader in self.readers:
            reader.start()
        names = ", ".join(f"{c.name} ({c.source})" for c in self.config.cameras)
        log.info("running: %s", names)
        self.notifier.ready(status=f"running: {names}")
        self.notifier.watchdog(force=True)
        now, stats_every = time.monotonic(), self.config.logging.stats_interval
        self._stats_timer = Every(stats_every, now=now)
        self._status_timer = Every(min(STATUS_INTERVAL, stats_every) if stats_every > 0 else STATUS_INTERVAL, now=now)

    def _publish_initial_states(self) -> None:
        # Retained states are (re)sent on every connect, so subscribers see LOCKED from the start.
        for camera in self.config.cameras:
            sink = self.gpio.get(camera.name)
            relay = sink.relay_state if sink is not None and camera.gpio.relay_pin is not None else None
            for feature, value in (("detect", "ON" if camera.detect else "OFF"), ("relay", relay)):
                if value is not None:
                    self.watchers.state(camera.name, feature, value)
                    if self.mqtt is not None:
                        self.mqtt.publish_state(camera.name, feature, value)

    def _loop(self) -> None:
        interval = self.notifier.watchdog_interval
        timeout = min(LOOP_TIMEOUT, interval) if interval else LOOP_TIMEOUT
        while not self.stop_event.is_set():
            for frame in self.mailbox.take(timeout):
                result = self.pipelines[frame.camera].step(frame)
                self._publish(result)
            self.commands.run_pending()
            self.notifier.watchdog()
            self._housekeeping()
            if self.mailbox.all_finished():
                log.info("every source has ended")
                break

    def _publish(self, result: FrameResult, *, count: bool = True) -> None:
        camera = result.frame.camera
        start = time.perf_counter()
        gpio = self.gpio.get(camera)
        if gpio is not None:
            gpio.publish(result)
        if self.mqtt is not None:
            self.mqtt.publish_frame(result)
        if self.handoff is not None:
            self.handoff.put(result.events)  # stored, then logged, on the delivery thread
        elif result.events:
            log_events(result.events)
        ms = {**result.ms, "sinks": (time.perf_counter() - start) * 1e3} if count else None
        self.stats.add(camera, ms, events=len(result.events))  # ms None: faces ended by the clock, no frame
        self.watchers.frame(result, ms=ms)

    def _housekeeping(self) -> None:
        # A stalled live source delivers no frames, so its faces are aged out here, by the wall
        # clock (its capture clock); a recording never stalls, it ends.
        for name in self._live:
            expired = self.pipelines[name].expire(time.time())
            if expired is not None:
                self._publish(expired, count=False)
        now = time.monotonic()
        if self._status_timer.due(now):
            self.notifier.status(f"{self.stats.snapshot(reset=False)['fps']} fps, "
                                 f"{self.stats.total_frames} frames, {self.stats.total_events} events")
        self.watchers.tick(now)
        if self._stats_timer.due(now):
            self.report_stats()

    def report_stats(self) -> dict[str, object]:
        """Log the stats line and publish the stats topic; returns what was reported."""
        stats = collect_stats(self.stats, dropped_frames=sum(s.dropped for s in self.mailbox.state.values()),
                              mqtt=self.mqtt.stats() if self.mqtt is not None else None)
        log.info("stats: %s", format_line(stats))
        if self.mqtt is not None:
            self.mqtt.publish_stats(stats)
        return stats

    # -- stopping -------------------------------------------------------------------------------
    def _shutdown(self) -> None:
        """Stop sources, end open faces, lock the relay, say ``stopped``, flush MQTT; each step guarded."""
        self.notifier.stopping()
        self.notifier.watchdog(force=True)
        for reader in self.readers:
            _guarded(f"stopping camera {reader.source.camera}", reader.stop)
        _guarded("ending open faces", self._flush_pipelines)
        for name, sink in self.gpio.items():
            _guarded(f"closing GPIO of {name} (relay LOCKED)", sink.close)
        if self.handoff is not None:
            _guarded("storing the last events", self.handoff.close)
        _guarded("final stats", self.report_stats)
        if self.mqtt is not None:
            _guarded("closing MQTT", self.mqtt.close)
        _guarded("closing the status page", self.watchers.close)
        self.notifier.close()
        log.info("stopped after %d frame(s), %d event(s)", self.stats.total_frames, self.stats.total_events)

    def _flush_pipelines(self) -> None:
        for name, pipeline in self.pipelines.items():
            # Closing frames carry the camera's own clock: a recording's media time, else now.
            closing = pipeline.flush(time.time() if name in self._live else pipeline.last_timestamp)
            if closing is not None:
                log.info("camera %s: ending %d open face(s)", name, len(closing.events))
                self._publish(closing, count=False)


def log_events(events: Sequence[FaceEvent]) -> None:
    """One line per event, in one record (a crowd makes dozens of events a frame).

    With MQTT it is called once the outbox holds them (on disk): a logged event is never lost.
    """
    if events and log.isEnabledFor(logging.INFO):
        log.info("%s", "\n".join(f"camera {e.after.camera}: face {e.after.id} {e.type} (score {e.after.score:.2f})"
                                 for e in events))


def _guarded(what: str, step: Callable[[], object]) -> None:
    # Shutdown must reach the relay and the broker even if an earlier step fails.
    try:
        step()
    except Exception:
        log.exception("shutdown: %s failed", what)


def build_face_detector(cfg: DetectorConfig) -> Detector:
    """The TFLite face detector of the ``[detector]`` section, loaded once and shared by every camera with pixels."""
    from rpi_agent.detection.decoder import DecodeOptions
    from rpi_agent.detection.face_detector import FaceDetector

    detector = FaceDetector.from_model(
        cfg.model, num_threads=cfg.threads,
        resize=None if cfg.resize == "auto" else cfg.resize,  # type: ignore[arg-type]
        options=DecodeOptions(score_threshold=cfg.threshold, iou_threshold=cfg.nms_iou, box_voting=cfg.box_voting),
    )
    log.info("detector %s (%dx%d input, %d thread(s), %s)", detector.detector.path,
             detector.detector.width, detector.detector.height, cfg.threads, detector.resize)
    return detector
