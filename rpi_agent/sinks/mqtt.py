"""MQTT sink: Frigate-shaped topics, QoS 1 events through an on-disk outbox, HA discovery, commands.

Three parts: :class:`~rpi_agent.sinks.connection.MqttConnection` owns the paho client and its
network thread (connect, MQTT 5 → 3.1.1 fallback, reconnect with backoff);
:class:`~rpi_agent.sinks.publisher.OutboxPublisher` keeps events on disk until the broker
acknowledges them, so an outage or a restart loses none; this module maps pipeline results to
topics. Calls from the daemon's threads only store data; the network thread sends it.
Consumers drop duplicates by ``message_id``.

Example:
    >>> sink = MqttSink(config.mqtt, cameras=["door"], outbox_dir=state, on_command=handle,
    ...                 sw_version="0.1.0")  # doctest: +SKIP
    >>> sink.start(); sink.publish(result); sink.close()  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from rpi_agent.config.camera import SnapshotConfig
from rpi_agent.config.mqtt import MqttConfig
from rpi_agent.credentials import read_secret
from rpi_agent.domain import FaceEvent, FrameResult
from rpi_agent.errors import ConfigError
from rpi_agent.sinks.commands import CommandHandler, CommandRouter
from rpi_agent.sinks.connection import MqttConnection, default_client_id
from rpi_agent.sinks.discovery import discovery_messages
from rpi_agent.sinks.outbox import Outbox, OutboxError
from rpi_agent.sinks.publisher import OutboxPublisher
from rpi_agent.sinks.snapshot import SnapshotWorker, snapshot_request
from rpi_agent.sinks.topics import Topics, event_payload, topic_problem

logger = logging.getLogger(__name__)

OUTBOX_FILE = "mqtt-outbox.sqlite3"
DEFAULT_SNAPSHOT = SnapshotConfig()
LIVE_KEPT = 256
"""Retained updates and stats waiting for the network thread; it takes them every few ms."""


class MqttSink:
    """Publishes pipeline results to an MQTT broker and receives commands.

    Args:
        config: The ``[mqtt]`` section.
        cameras: Camera names (topics and discovery are made for each).
        outbox_dir: Writable directory for the outbox file.
        on_command: ``(camera, feature, command) -> new state or None``; called on the MQTT
            thread with a parsed :data:`~rpi_agent.sinks.commands.Command`. A returned state is
            published retained on ``.../<feature>/state``.
        sw_version: Shown in the Home Assistant device block.
        snapshots: Snapshot policy per camera (default: full frame, quality 80, any zone).
        remote_unlock: Cameras for which the ``unlock`` command is accepted at all.
        relays: Cameras with a relay (announced to Home Assistant as a lock sensor).

    Raises:
        ConfigError: A topic is not valid, a TLS file cannot be loaded or the outbox cannot be opened.
    """

    def __init__(self, config: MqttConfig, *, cameras: list[str], outbox_dir: Path, on_command: CommandHandler,
                 sw_version: str, snapshots: Mapping[str, SnapshotConfig] | None = None,
                 remote_unlock: Collection[str] = (), relays: Collection[str] = ()) -> None:
        self.config = config
        self.cameras = list(cameras)
        self.topics = Topics(config.topic_prefix)
        self._check_topics()
        self.client_id = config.client_id or default_client_id()
        self.node_id = config.home_assistant.node_id or self.client_id.replace(".", "_")
        self._sw_version = sw_version
        self._snapshots = dict(snapshots or {})
        self._remote_unlock = frozenset(remote_unlock)
        self._relays = frozenset(relays)
        self._commands = CommandRouter(self.topics, cameras=self.cameras, remote_unlock=self._remote_unlock,
                                       on_command=on_command, on_state=self.publish_state)
        self._retained: dict[str, bytes] = {}  # the latest of each, sent again on every connection
        self._live: deque[tuple[str, bytes, bool]] = deque(maxlen=LIVE_KEPT)  # in order, for the network thread
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._announce_due = False
        self._closed = False
        try:
            self.outbox = Outbox(outbox_dir / OUTBOX_FILE, max_messages=config.outbox.max_messages,
                                 sync=config.outbox.sync)
        except OutboxError as exc:
            raise ConfigError(f"paths.state_dir: {exc}") from None
        self._snapshotter = SnapshotWorker(lambda camera, jpeg: self._set_retained(self.topics.snapshot(camera), jpeg))
        self._publisher = OutboxPublisher(self.outbox, window=config.outbox.window,
                                          drain_timeout=max(30.0, 3.0 * config.keepalive))
        password = read_secret(credential=config.password_credential, env_var=config.password_env,
                               inline=config.password)
        # QoS 0 for commands: a stale unlock must not be queued by the broker while we are away.
        subscriptions = [(self.topics.command_filter(camera), 0) for camera in self.cameras]
        if config.home_assistant.enabled:
            subscriptions.append((config.home_assistant.status_topic, 1))
        try:
            self._link = MqttConnection(config, client_id=self.client_id, available=self.topics.available,
                                        subscriptions=subscriptions, handler=self, password=password)
        except ConfigError:
            self.outbox.close()
            raise

    def _check_topics(self) -> None:
        """Every topic must be one the broker can take; a bad one can never work, so refuse to start."""
        names = [self.topics.events, self.topics.available, self.topics.stats]
        for camera in self.cameras:
            names += [self.topics.faces(camera), self.topics.snapshot(camera), self.topics.state(camera, "relay"),
                      self.topics.command_filter(camera).replace("+", "unlock")]
        for name in names:
            if problem := topic_problem(name):
                raise ConfigError(f"mqtt.topic_prefix: the topic {name[:80]!r} {problem}")

    def start(self) -> None:
        """Start the network thread; returns at once (the connection comes up in the background)."""
        logger.info("MQTT: connecting to %s:%d as %s (outbox: %d waiting, %d dropped so far)",
                    self.config.host, self.config.port, self.client_id, len(self.outbox), self.outbox.dropped)
        self._link.start()

    @property
    def connected(self) -> bool:
        return self._link.connected

    @property
    def running(self) -> bool:
        """Whether the network thread is alive (it retries every failure; only :meth:`close` ends it)."""
        return self._link.running

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected and subscribed, or ``timeout`` seconds pass; returns whether ready."""
        return self._link.wait_ready(timeout)

    def close(self) -> None:
        """Flush briefly, publish ``stopped``, disconnect cleanly (no Last Will); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._snapshotter.close()
        self._link.close()
        self._publisher.flush()
        if waiting := len(self.outbox):
            logger.info("MQTT: %d events kept in the outbox for the next start", waiting)
        self.outbox.close()

    # -- called by the daemon (any thread): store, the network thread sends --------------------
    def publish(self, result: FrameResult) -> None:
        """Store the frame's events (outbox, one commit, QoS 1), update the face count, ask for a snapshot.

        The events are on disk when this returns; the snapshot is encoded on its own thread.
        """
        self.store_events(result.events)
        self.publish_frame(result)

    def store_events(self, events: Sequence[FaceEvent]) -> None:
        """The events part of :meth:`publish`: on disk when this returns (one transaction for all)."""
        if events:
            self._publisher.add_many(self.topics.events, [event_payload(e) for e in events], qos=self.config.qos)
            if self._link.connected:
                self._link.wake()

    def publish_frame(self, result: FrameResult) -> None:
        """The rest of :meth:`publish`: the face count when it changed, and a snapshot when one is due."""
        camera = result.frame.camera
        count = len(result.faces)
        if self._counts.get(camera) != count:
            self._counts[camera] = count
            self._set_retained(self.topics.faces(camera), str(count).encode())
        if not result.events:
            return
        policy = self._snapshots.get(camera, DEFAULT_SNAPSHOT)
        face = snapshot_request(result, policy)
        if face is not None:
            self._snapshotter.submit(camera, result.frame, face, policy)

    def drain_snapshots(self, timeout: float) -> bool:
        """Wait until the requested snapshots are encoded and queued for the broker (tests, shutdown)."""
        return self._snapshotter.drain(timeout)

    def publish_state(self, camera: str, feature: str, value: str) -> None:
        """Publish ``value`` retained on ``<prefix>/<camera>/<feature>/state`` (kept for reconnects)."""
        self._set_retained(self.topics.state(camera, feature), value.encode())

    def publish_stats(self, stats: Mapping[str, object]) -> None:
        """Publish the daemon's stats plus the sink's own counters on ``<prefix>/stats`` (QoS 0)."""
        body = dict(stats)
        body["mqtt"] = self.stats()
        if self.connected:
            with self._lock:
                self._live.append((self.topics.stats, json.dumps(body, separators=(",", ":"), default=str).encode(),
                                   False))

    def stats(self) -> dict[str, object]:
        """Counters: outbox waiting/dropped, refused (set aside), connections, network thread errors."""
        return {**self._link.stats(), **self._publisher.stats(), **self._snapshotter.stats()}

    def _set_retained(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self._retained[topic] = payload
            if self.connected:
                self._live.append((topic, payload, True))

    # -- LinkHandler: the network thread ------------------------------------------------------
    def on_up(self, link: MqttConnection, receive_maximum: int | None) -> None:
        self._announce(link)
        with self._lock:
            retained = list(self._retained.items())
            self._live.clear()
        for topic, payload in retained:
            link.send(topic, payload, qos=1, retain=True)
        self._publisher.connected(receive_maximum)

    def on_tick(self, link: MqttConnection) -> None:
        with self._lock:
            due = list(self._live)
            self._live.clear()
        for topic, payload, retain in due:
            link.send(topic, payload, qos=1 if retain else 0, retain=retain)
        if self._announce_due:
            self._announce_due = False
            self._announce(link)
        self._publisher.pump(link)

    def on_acked(self, mid: int, refusal: str | None) -> None:
        self._publisher.acked(mid, refusal)

    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic == self.config.home_assistant.status_topic:
            if payload.strip().lower() == b"online":
                logger.info("MQTT: Home Assistant is online; announcing entities again")
                self._announce_due = True
            return
        self._commands.handle(topic, payload, retained=retained)

    def on_down(self) -> None:
        if self._publisher.disconnected():
            self._link.renew()  # the old client would send the set-aside entry again

    def on_new_client(self) -> None:
        self._publisher.reset()

    def waiting(self) -> bool:
        return self._publisher.waiting()

    def _announce(self, link: MqttConnection) -> None:
        ha = self.config.home_assistant
        if not ha.enabled:
            return
        for topic, payload in discovery_messages(
            self.topics, cameras=self.cameras, node_id=self.node_id, sw_version=self._sw_version,
            discovery_prefix=ha.discovery_prefix, device_name=ha.device_name, unlock_cameras=self._remote_unlock,
            relay_cameras=self._relays,
        ):
            link.send(topic, json.dumps(payload, separators=(",", ":")).encode(), qos=1, retain=True)
