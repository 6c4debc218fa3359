"""The MQTT connection: one paho client owned by one network thread.

That thread builds the client (TLS, Last Will), connects (MQTT 5, else 3.1.1 if the broker
refuses 5), subscribes, runs the network loop and reconnects with backoff. Nothing else touches
the client: other threads leave work where the thread's :class:`LinkHandler` finds it on the
next loop turn, so replacing the client for the 3.1.1 fallback can never race a publish.
Any failure inside the thread (a bad host name the resolver chokes on, a bug in a callback) is
one error line, counted, shown in :meth:`MqttConnection.stats`, and retried with backoff.

Example:
    >>> link = MqttConnection(config.mqtt, client_id="hall", available="fa/available",
    ...                       subscriptions=[("fa/door/+/set", 0)], handler=sink)  # doctest: +SKIP
    >>> link.start(); link.close()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from rpi_agent.config.mqtt import MqttConfig, check_tls_files
from rpi_agent.credentials import Secret
from rpi_agent.errors import ConfigError
from rpi_agent.sinks.wakeup import publish_here, wake
from rpi_agent.sources.common import Backoff

logger = logging.getLogger(__name__)

LOOP_TIMEOUT = 0.05
"""Longest wait in the network loop: work left by other threads goes out within this time."""
CLOSE_TIMEOUT = 3.0


def default_client_id() -> str:
    """``faceagent-<hostname>``, reduced to characters every broker accepts."""
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:40]
    return f"faceagent-{host or 'host'}"


def describe_connect_error(exc: BaseException) -> str:
    """One line saying why a connection attempt failed, with the config key to look at."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate check failed: {exc.verify_message} (check mqtt.tls_ca_certs and mqtt.host)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc} (check the mqtt.tls_* settings)"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def refusal_hint(reason: str) -> str:
    """A hint to add to a CONNACK refusal."""
    lowered = reason.lower()
    if "user name or password" in lowered or "not authorized" in lowered:
        return " (check mqtt.username and the password credential)"
    if "identifier" in lowered:
        return " (check mqtt.client_id)"
    return ""


def make_client(config: MqttConfig, *, client_id: str, v5: bool, will: str, password: Secret | None) -> mqtt.Client:
    """A paho client set up from ``config`` (not connected yet; no callbacks).

    Raises:
        ConfigError: A TLS file cannot be loaded.
    """
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, clean_session=None if v5 else True)
    if config.username:
        client.username_pw_set(config.username, password.reveal() if password else None)
    if config.use_tls:
        _set_tls(client, config)
    client.will_set(will, "offline", qos=1, retain=True)
    client.max_inflight_messages_set(config.outbox.window)
    client.max_queued_messages_set(config.outbox.window + 1000)
    properties = None
    if v5:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = config.session_expiry
    # MQTT 5: a clean session at start, the same session resumed after an outage.
    client.connect_async(config.host, config.port, keepalive=config.keepalive,
                         clean_start=mqtt.MQTT_CLEAN_START_FIRST_ONLY, properties=properties)
    return client


def _set_tls(client: mqtt.Client, cfg: MqttConfig) -> None:
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


class LinkHandler(Protocol):
    """What the connection calls, always on its network thread."""

    def on_up(self, link: MqttConnection, receive_maximum: int | None) -> None:
        """Connected and subscribed to; publish what a new session needs."""

    def on_tick(self, link: MqttConnection) -> None:
        """One loop turn while connected: hand over waiting work."""

    def on_acked(self, mid: int, refusal: str | None) -> None:
        """The broker acknowledged ``mid``; ``refusal`` is its MQTT 5 reason if it refused it."""

    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        """A message on a subscribed topic."""

    def on_down(self) -> None:
        """The connection is gone (or never came up)."""

    def on_new_client(self) -> None:
        """The client was replaced: it holds none of the messages handed to the old one."""

    def waiting(self) -> bool:
        """Whether messages still wait to be delivered (a clean stop waits briefly for them)."""


class MqttConnection:
    """Connects, reconnects and runs the loop for one client; see the module docstring.

    Args:
        config: The ``[mqtt]`` section.
        client_id: The client id.
        available: Topic of ``online``/``stopped``/``offline`` (the Last Will), retained.
        subscriptions: ``(filter, qos)`` pairs subscribed to on every connection.
        handler: Receives the callbacks.
        password: The password, if any.

    Raises:
        ConfigError: A TLS file cannot be loaded.
    """

    def __init__(self, config: MqttConfig, *, client_id: str, available: str, subscriptions: list[tuple[str, int]],
                 handler: LinkHandler, password: Secret | None = None) -> None:
        self.config = config
        self.client_id = client_id
        self.available = available
        self._subscriptions = subscriptions
        self._handler = handler
        self._password = password
        self._v5 = config.protocol == "5"
        self._stop = threading.Event()
        self._closing = threading.Event()
        self._wake = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._owner = 0  # ident of the network thread, the only one that touches the client
        self._connected = False
        self._renew = False
        self._sub_mid: int | None = None
        self._stopped_mid: int | None = None
        self._stopped_acked = False
        self._close_by = 0.0
        self.last_error = ""
        self.errors = 0
        self.connections = 0
        self._client = self._make_client()

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def protocol(self) -> str:
        return "5" if self._v5 else "3.1.1"

    def _make_client(self) -> mqtt.Client:
        client = make_client(self.config, client_id=self.client_id, v5=self._v5, will=self.available,
                             password=self._password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def start(self) -> None:
        """Start the network thread; returns at once (the connection comes up in the background)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_ready(self, timeout: float) -> bool:
        """Block until connected and subscribed, or ``timeout`` seconds pass; returns whether ready."""
        return self._ready.wait(timeout)

    def renew(self) -> None:
        """Replace the client before the next connection (drops what the old one still holds)."""
        self._renew = True

    def send(self, topic: str, payload: bytes, *, qos: int, retain: bool = False) -> int | None:
        """Hand one message to the client; network thread only.

        Returns:
            Its message id, or ``None`` if the client's queue is full (nothing was queued). A QoS 1/2
            message the client holds goes out on the next connection if this one just dropped.

        Raises:
            ValueError: The client will not send it at all (invalid topic, payload too large).
        """
        if threading.get_ident() != self._owner:
            raise RuntimeError("MqttConnection.send() is for the network thread only")
        info = publish_here(self._client, topic, payload, qos=qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            return None
        if info.rc in (mqtt.MQTT_ERR_PAYLOAD_SIZE, mqtt.MQTT_ERR_INVAL, mqtt.MQTT_ERR_NOT_SUPPORTED):
            raise ValueError(mqtt.error_string(info.rc))
        return info.mid

    def wake(self) -> None:
        """Make the network loop take its next turn now (any thread): entries just stored go out at once."""
        wake(self._client)

    def close(self) -> None:
        """Flush briefly, publish ``stopped``, disconnect cleanly (no Last Will), end the thread; idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            self._stop.set()
            return
        self._close_by = time.monotonic() + CLOSE_TIMEOUT
        self._closing.set()
        self._wake.set()
        thread.join(timeout=2 * CLOSE_TIMEOUT + 2)
        if thread.is_alive():
            self._stop.set()
            thread.join(timeout=2)

    def stats(self) -> dict[str, object]:
        """``connected``, ``connections``, ``errors`` (failures of the network thread), ``last_error``."""
        return {"connected": self._connected, "connections": self.connections, "errors": self.errors,
                "last_error": self.last_error, "protocol": self.protocol}

    def _run(self) -> None:
        self._owner = threading.get_ident()
        backoff = Backoff(self.config.reconnect_min, self.config.reconnect_max)
        while not self._stop.is_set() and not self._closing.is_set():
            try:
                self._session(backoff)
            except Exception as exc:  # a failure here must never end the thread: report it, back off
                self._report(f"network loop failed: {describe_connect_error(exc)}", backoff)
                logger.debug("MQTT: network thread failure", exc_info=True)
            if self._stop.is_set() or self._closing.is_set():
                break
            self._went_down()
            self._wake.wait(backoff.next_delay())
        self._finish()

    def _session(self, backoff: Backoff) -> None:
        """One connection: connect, loop until it drops or the sink closes."""
        if self._renew:
            self._renew = False
            self._client = self._make_client()
            self._handler.on_new_client()
        try:
            self._client.reconnect()
        except Exception as exc:  # OSError, ssl.SSLError, and UnicodeError from the resolver
            hint = "" if isinstance(exc, OSError) else " (check mqtt.host)"
            self._report(f"cannot connect to {self.config.host[:80]}:{self.config.port}: "
                         f"{describe_connect_error(exc)}{hint}", backoff)
            return
        while not self._stop.is_set():
            if self._client.loop(timeout=LOOP_TIMEOUT) != mqtt.MQTT_ERR_SUCCESS:
                return
            if self._connected:
                backoff.reset()
                self._handler.on_tick(self)
            if self._closing.is_set() and self._closed_step():
                return

    def _closed_step(self) -> bool:
        """One step of a clean stop; True once the DISCONNECT may go."""
        if not self._connected or time.monotonic() > self._close_by + CLOSE_TIMEOUT:
            return True
        if self._stopped_mid is None:
            if self._handler.waiting() and time.monotonic() < self._close_by:
                return False
            self._stopped_mid = self.send(self.available, b"stopped", qos=1, retain=True)
            return self._stopped_mid is None
        return self._stopped_acked

    def _finish(self) -> None:
        self._client.disconnect()
        # Let the DISCONNECT packet go out.
        for _ in range(10):
            if self._client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                break
        self._connected = False
        self._ready.clear()

    def _went_down(self) -> None:
        self._connected = False
        self._ready.clear()
        self._handler.on_down()

    def _report(self, message: str, backoff: Backoff) -> None:
        """Log a connection problem once at ERROR; repeats of the same problem go to DEBUG."""
        self.errors += 1
        delay = min(backoff.maximum, backoff.initial * 2.0 ** min(backoff.failures, 60))  # what next_delay() gives
        if message != self.last_error:
            logger.error("MQTT: %s; retrying (backoff %.1f-%.0f s)", message, backoff.initial, backoff.maximum)
            self.last_error = message
        else:
            logger.debug("MQTT: %s; retrying in %.1f s", message, delay)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            if self._v5 and "protocol version" in str(reason).lower():
                logger.warning("MQTT: broker refused MQTT 5; falling back to 3.1.1")
                self._v5 = False
                self._renew = True
            else:
                self.errors += 1
                message = f"broker refused the connection: {reason}{refusal_hint(str(reason))}"
                if message != self.last_error:
                    logger.error("MQTT: %s; retrying", message)
                self.last_error = message
            return
        logger.info("MQTT: connected to %s:%d (MQTT %s)%s", self.config.host, self.config.port, self.protocol,
                    f" after: {self.last_error}" if self.last_error else "")
        self.last_error = ""
        self.connections += 1
        self._connected = True
        self._sub_mid = self._subscribe(client)
        client.publish(self.available, "online", qos=1, retain=True)
        self._handler.on_up(self, getattr(props, "ReceiveMaximum", None))
        if self._sub_mid is None:
            self._ready.set()

    def _subscribe(self, client: mqtt.Client) -> int | None:
        if not self._subscriptions:
            return None
        if self._v5:
            # Retain As Published: a command published with retain keeps the flag, so it is refused
            # live as well as when the broker replays it.
            subs: list[tuple[str, Any]] = [(topic, SubscribeOptions(qos=qos, retainAsPublished=True))
                                           for topic, qos in self._subscriptions]
            return client.subscribe(subs)[1]
        return client.subscribe(list(self._subscriptions))[1]

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        if mid == self._sub_mid:
            self._ready.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        was_connected = self._connected
        self._connected = False
        self._ready.clear()
        if was_connected and not self._closing.is_set():
            self.last_error = f"connection lost ({reason})"
            logger.warning("MQTT: %s; reconnecting, events wait in the outbox", self.last_error)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        if mid == self._stopped_mid:
            self._stopped_acked = True
            return
        refused = reason is not None and reason.is_failure  # MQTT 5 only, e.g. an ACL that forbids the topic
        self._handler.on_acked(mid, str(reason) if refused else None)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._handler.on_message(msg.topic, bytes(msg.payload), bool(msg.retain))
