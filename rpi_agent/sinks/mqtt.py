"""MQTT sink: Frigate-shaped topics, QoS 1 events through an on-disk outbox, HA discovery, commands.

The only module importing paho-mqtt. One network thread owns the client: it connects (MQTT 5, else
3.1.1 if the broker refuses 5), runs the loop, reconnects with backoff and hands outbox entries to the
client. Events enter the outbox before they are sent and leave it when the broker acknowledges them,
so an outage or a restart loses none; consumers drop duplicates by ``message_id``.

Example:
    >>> sink = MqttSink(config.mqtt, cameras=["door"], outbox_dir=state, on_command=handle,
    ...                 sw_version="0.1.0")  # doctest: +SKIP
    >>> sink.start(); sink.publish(result); sink.close()  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from rpi_agent.config.camera import SnapshotConfig
from rpi_agent.config.mqtt import MqttConfig, check_tls_files
from rpi_agent.credentials import read_secret
from rpi_agent.domain import FrameResult
from rpi_agent.errors import ConfigError
from rpi_agent.sinks.commands import CommandHandler, CommandRouter
from rpi_agent.sinks.connection import default_client_id, describe_connect_error, refusal_hint
from rpi_agent.sinks.delivery import Delivery
from rpi_agent.sinks.discovery import discovery_messages
from rpi_agent.sinks.outbox import Outbox, OutboxError
from rpi_agent.sinks.snapshot import snapshot_for
from rpi_agent.sinks.topics import Topics, event_payload

logger = logging.getLogger(__name__)

OUTBOX_FILE = "mqtt-outbox.sqlite3"
LOOP_TIMEOUT = 0.2
CLOSE_TIMEOUT = 3.0


class MqttSink:
    """Publishes pipeline results to an MQTT broker and receives commands.

    Args:
        config: The ``[mqtt]`` section.
        cameras: Camera names (topics and discovery are made for each).
        outbox_dir: Writable directory for the outbox file.
        on_command: ``(camera, feature, payload) -> new state or None``; called on the MQTT
            thread with a checked payload (``ON``/``OFF`` for ``detect``; ``ON`` or seconds for
            ``unlock``). A returned state is published retained on ``.../<feature>/state``.
        sw_version: Shown in the Home Assistant device block.
        snapshots: Snapshot policy per camera (default: full frame, quality 80, any zone).
        remote_unlock: Cameras for which the ``unlock`` command is accepted at all.

    Raises:
        ConfigError: A TLS file cannot be loaded or the outbox cannot be opened.
    """

    def __init__(
        self,
        config: MqttConfig,
        *,
        cameras: list[str],
        outbox_dir: Path,
        on_command: CommandHandler,
        sw_version: str,
        snapshots: Mapping[str, SnapshotConfig] | None = None,
        remote_unlock: Collection[str] = (),
    ) -> None:
        self.config = config
        self.cameras = list(cameras)
        self.topics = Topics(config.topic_prefix)
        self.client_id = config.client_id or default_client_id()
        self.node_id = config.home_assistant.node_id or self.client_id.replace(".", "_")
        self._sw_version = sw_version
        self._snapshots = dict(snapshots or {})
        self._remote_unlock = frozenset(remote_unlock)
        self._commands = CommandRouter(self.topics, cameras=self.cameras, remote_unlock=self._remote_unlock,
                                       on_command=on_command, on_state=self.publish_state)
        self._password = read_secret(credential=config.password_credential, env_var=config.password_env,
                                     inline=config.password)
        self._protocol = mqtt.MQTTv5 if config.protocol == "5" else mqtt.MQTTv311
        try:
            self.outbox = Outbox(outbox_dir / OUTBOX_FILE, max_messages=config.outbox.max_messages,
                                 sync=config.outbox.sync)
        except OutboxError as exc:
            raise ConfigError(f"paths.state_dir: {exc}") from None
        self._delivery = Delivery(window=config.outbox.window, drain_timeout=max(30.0, 3.0 * config.keepalive))
        self._retained: dict[str, bytes] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._pump_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error = ""
        self._fallback = False
        self._up = threading.Event()
        self._sub_mid: int | None = None
        self._had_session = False
        self.reconnects = self.refused = 0
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        v5 = self._protocol == mqtt.MQTTv5
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=self._protocol,
                             clean_session=None if v5 else True)
        if cfg.username:
            client.username_pw_set(cfg.username, self._password.reveal() if self._password else None)
        if cfg.use_tls:
            self._set_tls(client)
        client.will_set(self.topics.available, "offline", qos=1, retain=True)
        client.max_inflight_messages_set(cfg.outbox.window)
        client.max_queued_messages_set(cfg.outbox.window + 1000)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = cfg.session_expiry
        # MQTT 5: a clean session at start, the same session resumed after an outage.
        client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive,
                             clean_start=mqtt.MQTT_CLEAN_START_FIRST_ONLY, properties=properties)
        return client

    def _set_tls(self, client: mqtt.Client) -> None:
        cfg = self.config
        check_tls_files(cfg)
        try:
            client.tls_set(
                ca_certs=str(cfg.tls_ca_certs) if cfg.tls_ca_certs else None,
                certfile=str(cfg.tls_client_cert) if cfg.tls_client_cert else None,
                keyfile=str(cfg.tls_client_key) if cfg.tls_client_key else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigError(f"mqtt.tls_ca_certs: cannot load the TLS files: {exc}") from None
        client.tls_insecure_set(cfg.tls_insecure)

    def start(self) -> None:
        """Start the network thread; returns at once (the connection comes up in the background)."""
        if self._thread is not None:
            return
        logger.info("MQTT: connecting to %s:%d as %s (outbox: %d waiting, %d dropped so far)",
                    self.config.host, self.config.port, self.client_id, len(self.outbox), self.outbox.dropped)
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> bool:
        return self._delivery.is_connected

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected and subscribed, or ``timeout`` seconds pass; returns whether ready."""
        return self._up.wait(timeout)

    def close(self) -> None:
        """Flush briefly, publish ``stopped``, disconnect cleanly (no Last Will); idempotent."""
        if self._stop.is_set():
            return
        if self._thread is not None and self.connected:
            self._flush(CLOSE_TIMEOUT)
            info = self._client.publish(self.topics.available, "stopped", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=CLOSE_TIMEOUT)
            except (RuntimeError, ValueError) as exc:
                logger.warning("MQTT: could not publish 'stopped': %s", exc)
        self._stop.set()
        self._client.disconnect()
        if self._thread is not None:
            self._thread.join(timeout=CLOSE_TIMEOUT + 2)
        if waiting := len(self.outbox):
            logger.info("MQTT: %d events kept in the outbox for the next start", waiting)
        self.outbox.close()

    def _flush(self, timeout: float) -> None:
        for _ in range(int(timeout / 0.05)):
            if len(self.outbox) == 0 or not self.connected:
                return
            self._pump()
            self._stop.wait(0.05)

    def _run(self) -> None:
        delay = self.config.reconnect_min
        while not self._stop.is_set():
            if self._fallback:
                self._rebuild_for_311()
            try:
                self._client.reconnect()
            except OSError as exc:  # includes ssl.SSLError
                where = f"{self.config.host}:{self.config.port}"
                self._report(f"cannot connect to {where}: {describe_connect_error(exc)}", delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self.config.reconnect_max)
                continue
            rc = mqtt.MQTT_ERR_SUCCESS
            while rc == mqtt.MQTT_ERR_SUCCESS and not self._stop.is_set():
                try:
                    rc = self._client.loop(timeout=LOOP_TIMEOUT)
                    self._pump()
                except Exception:  # a bug in a callback must not end the sink: log it, reconnect
                    logger.exception("MQTT: error in the network loop; reconnecting")
                    rc = mqtt.MQTT_ERR_UNKNOWN
            if self._stop.is_set():
                break
            if self._had_session:
                # The broker was reachable: start the backoff from the beginning.
                delay, self._had_session = self.config.reconnect_min, False
            self._delivery.disconnected()
            self._up.clear()
            self._stop.wait(delay)
            delay = min(delay * 2, self.config.reconnect_max)
        # Let the DISCONNECT packet go out.
        for _ in range(10):
            if self._client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                break

    def _rebuild_for_311(self) -> None:
        self._fallback = False
        self._protocol = mqtt.MQTTv311
        self._delivery.reset()
        self._client = self._make_client()

    def _report(self, message: str, delay: float) -> None:
        """Log a connection problem once at ERROR; repeats of the same problem go to DEBUG."""
        if message != self._last_error:
            logger.error("MQTT: %s; retrying (backoff %.1f-%.0f s)", message, delay, self.config.reconnect_max)
            self._last_error = message
        else:
            logger.debug("MQTT: %s; retrying in %.1f s", message, delay)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            if self._protocol == mqtt.MQTTv5 and "protocol version" in str(reason).lower():
                logger.warning("MQTT: broker refused MQTT 5; falling back to 3.1.1")
                self._fallback = True
            else:
                self._report(f"broker refused the connection: {reason}{refusal_hint(str(reason))}",
                             self.config.reconnect_min)
            return
        logger.info("MQTT: connected to %s:%d (MQTT %s)%s", self.config.host, self.config.port,
                    "5" if self._protocol == mqtt.MQTTv5 else "3.1.1",
                    f" after: {self._last_error}" if self._last_error else "")
        self._last_error = ""
        # paho ignores the broker's Receive Maximum (mosquitto: 20); stay within it.
        window = min(self.config.outbox.window, getattr(props, "ReceiveMaximum", None) or self.config.outbox.window)
        self._delivery.window = window
        self.reconnects += 1
        # QoS 0 for commands: a stale unlock must not be queued by the broker while we are away.
        subs = [(self.topics.command_filter(camera), 0) for camera in self.cameras]
        if self.config.home_assistant.enabled:
            subs.append((self.config.home_assistant.status_topic, 1))
        self._sub_mid = client.subscribe(subs)[1] if subs else None
        client.publish(self.topics.available, "online", qos=1, retain=True)
        self._announce(client)
        with self._lock:
            retained = list(self._retained.items())
        for topic, payload in retained:
            client.publish(topic, payload, qos=1, retain=True)
        self._delivery.connected()
        self._had_session = True
        if self._sub_mid is None:
            self._up.set()

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        if mid == self._sub_mid:
            self._up.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        was_connected = self._delivery.is_connected
        self._delivery.disconnected()
        self._up.clear()
        if was_connected and not self._stop.is_set():
            self._last_error = f"connection lost ({reason})"
            logger.warning("MQTT: %s; reconnecting, events wait in the outbox", self._last_error)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        seq = self._delivery.acked(mid)
        if seq is None:
            return
        if reason is not None and reason.is_failure:  # MQTT 5 only, e.g. an ACL that forbids the topic
            self.refused += 1
            if self.refused in (1, 10) or self.refused % 100 == 0:
                logger.warning("MQTT: broker refused event #%d (%s); dropped (%d so far)", seq, reason, self.refused)
        self._remove(seq)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.config.home_assistant.status_topic:
            if msg.payload.strip().lower() == b"online":
                logger.info("MQTT: Home Assistant is online; announcing entities again")
                self._announce(self._client)
            return
        self._commands.handle(msg.topic, bytes(msg.payload), retained=bool(msg.retain))

    def _announce(self, client: mqtt.Client) -> None:
        ha = self.config.home_assistant
        if not ha.enabled:
            return
        for topic, payload in discovery_messages(
            self.topics, cameras=self.cameras, node_id=self.node_id, sw_version=self._sw_version,
            discovery_prefix=ha.discovery_prefix, device_name=ha.device_name, unlock_cameras=self._remote_unlock,
        ):
            client.publish(topic, json.dumps(payload, separators=(",", ":")), qos=1, retain=True)

    def _pump(self) -> None:
        """Hand waiting outbox entries to the client, in order, within the window."""
        if not self._pump_lock.acquire(blocking=False):
            return
        try:
            room = self._delivery.room()
            if room <= 0:
                return
            for entry in self.outbox.pending(after=self._delivery.handed, limit=room):
                info = self._client.publish(entry.topic, entry.payload, qos=entry.qos, retain=entry.retain)
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    break
                if self._delivery.sent(mid=info.mid, seq=entry.seq):
                    self._remove(entry.seq)
        except OutboxError as exc:
            logger.error("MQTT: %s", exc)
        finally:
            self._pump_lock.release()

    def _remove(self, seq: int) -> None:
        try:
            self.outbox.remove(seq)
        except OutboxError as exc:
            logger.error("MQTT: %s", exc)

    def publish(self, result: FrameResult) -> None:
        """Queue the frame's events (outbox, QoS 1), update the face count and the snapshot."""
        camera = result.frame.camera
        for event in result.events:
            payload = event_payload(event)
            try:
                self.outbox.append(self.topics.events, payload, qos=self.config.qos)
            except OutboxError as exc:
                logger.error("MQTT: %s; sending the event without the outbox", exc)
                self._client.publish(self.topics.events, payload, qos=self.config.qos)
        count = len(result.faces)
        if self._counts.get(camera) != count:
            self._counts[camera] = count
            self._set_retained(self.topics.faces(camera), str(count).encode())
        jpeg = snapshot_for(result, self._snapshots.get(camera, SnapshotConfig()))
        if jpeg is not None:
            self._set_retained(self.topics.snapshot(camera), jpeg)
        self._pump()

    def publish_state(self, camera: str, feature: str, value: str) -> None:
        """Publish ``value`` retained on ``<prefix>/<camera>/<feature>/state`` (kept for reconnects)."""
        self._set_retained(self.topics.state(camera, feature), value.encode())

    def publish_stats(self, stats: Mapping[str, object]) -> None:
        """Publish the daemon's stats plus the sink's own counters on ``<prefix>/stats`` (QoS 0)."""
        body = dict(stats)
        body["mqtt"] = self.stats()
        if self.connected:
            self._client.publish(self.topics.stats, json.dumps(body, separators=(",", ":"), default=str), qos=0)

    def stats(self) -> dict[str, object]:
        """Counters for the stats line: outbox waiting/dropped, refused, connections."""
        return {"connected": self.connected, "outbox_waiting": len(self.outbox), "outbox_dropped": self.outbox.dropped,
                "refused": self.refused, "connections": self.reconnects}

    def _set_retained(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self._retained[topic] = payload
        if self.connected:
            self._client.publish(topic, payload, qos=1, retain=True)
