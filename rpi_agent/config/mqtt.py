"""The ``[mqtt]`` section: broker, topics, TLS, credentials, outbox and Home Assistant discovery.

Pure data following the field convention of :mod:`rpi_agent.config.schema`. Secrets are never
read here: ``password_env`` and ``password_credential`` only name where the password lives, and
:func:`rpi_agent.credentials.read_secret` fetches it when the sink starts.

Example (``config.toml``)::

    [mqtt]
    host = "broker.lan"
    port = 8883
    client_id = "faceagent-hall"
    username = "faceagent"
    tls_ca_certs = "/etc/faceagent/ca.crt"
    [mqtt.home_assistant]
    enabled = true
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from rpi_agent.errors import ConfigError

TOPIC_LEVEL = re.compile(r"^[^+#/\s\x00]+(/[^+#/\s\x00]+)*$")
"""A topic prefix: one or more levels, no wildcards, no empty levels, no whitespace, no NUL."""

MAX_PREFIX_BYTES = 1024
"""Room for ``<prefix>/<camera>/face/snapshot`` and discovery topics far below MQTT's 65,535 bytes."""

NOT_IN_TOPICS = frozenset("\ufffe\uffff")
MAX_TOPIC_BYTES = 65535
"""MQTT encodes a topic with a two-byte length: longer topics cannot be sent at all."""


def topic_problem(topic: str, *, wildcards: bool = False) -> str | None:
    """Why ``topic`` is not a valid MQTT topic name (or filter, with ``wildcards``), or ``None``.

    Example:
        >>> topic_problem("faceagent/door/faces") is None
        True
        >>> topic_problem("fa+/events")
        'holds the wildcard + or #'
    """
    bad = next((c for c in topic if c in NOT_IN_TOPICS or c <= "\x1f" or "\x7f" <= c <= "\x9f"), None)
    if bad is not None:
        # MQTT forbids NUL and discourages the rest; Mosquitto closes the connection on any of them.
        return "holds a NUL character" if bad == "\x00" else f"holds the control or non-character U+{ord(bad):04X}"
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid UTF-8 (a lone surrogate)"
    if not 0 < size <= MAX_TOPIC_BYTES:
        return f"is {size} bytes long (MQTT allows {MAX_TOPIC_BYTES})" if size else "is empty"
    if not wildcards and ("+" in topic or "#" in topic):
        return "holds the wildcard + or #"
    return None


def host_problem(host: str) -> str | None:
    """Why ``host`` can never be connected to (not an IP address nor a valid DNS name), or ``None``.

    Example:
        >>> host_problem("broker..lan")
        'has an empty label (two dots in a row, or a leading dot)'
    """
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    checks = (
        (len(name) > 253, f"is {len(name)} characters long (a DNS name has at most 253)"),
        (any(not label for label in labels), "has an empty label (two dots in a row, or a leading dot)"),
        (any(len(label) > 63 for label in labels), "has a part longer than 63 characters between dots"),
        (any(c.isspace() or c in "/:@?#[]\\\x00" for c in name),
         "holds a blank or one of / : @ ? # [ ] \\ (give a bare host name or IP address)"),
    )
    for failed, why in checks:
        if failed:
            return why
    try:
        encoded = name.encode("idna")
    except UnicodeError as exc:
        return f"is not a valid international host name ({exc})"
    return f"is {len(encoded)} bytes long once encoded (at most 253)" if len(encoded) > 253 else None


def _check_prefix(key: str, prefix: str) -> None:
    if not TOPIC_LEVEL.match(prefix):
        raise ValueError(f"{key}: {prefix[:80]!r} is not a valid topic (no +, #, spaces, NUL, empty levels)")
    if problem := topic_problem(prefix):
        raise ValueError(f"{key}: {problem}")
    if len(prefix.encode("utf-8")) > MAX_PREFIX_BYTES:
        raise ValueError(f"{key}: is {len(prefix.encode('utf-8'))} bytes long (at most {MAX_PREFIX_BYTES})")


CLIENT_ID = re.compile(r"^[A-Za-z0-9_.-]{0,64}$")


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    """The on-disk outbox that keeps events until the broker acknowledges them."""

    max_messages: int = field(default=10000, metadata={
        "doc": "most unacknowledged events kept on disk; past it the oldest are dropped (and counted)",
        "min": 10, "max": 1_000_000})
    sync: str = field(default="normal", metadata={
        "doc": "normal: survives a crash of the daemon, few SD card writes; full: fsync every event, "
               "also survives a power cut", "choices": ("normal", "full")})
    window: int = field(default=50, metadata={
        "doc": "events handed to the broker before waiting for acknowledgements", "min": 1, "max": 1000})


@dataclass(frozen=True, slots=True)
class HomeAssistantConfig:
    """Home Assistant MQTT discovery."""

    enabled: bool = field(default=True, metadata={"doc": "announce entities to Home Assistant"})
    discovery_prefix: str = field(default="homeassistant", metadata={
        "doc": "Home Assistant's discovery prefix", "min": 1})
    status_topic: str = field(default="homeassistant/status", metadata={
        "doc": "Home Assistant's birth topic; entities are announced again when it says online", "min": 1})
    node_id: str = field(default="", metadata={
        "doc": "node id in discovery topics and unique ids; empty: the client id", "max": 64})
    device_name: str = field(default="", metadata={"doc": "device name shown in Home Assistant; empty: node id"})

    def __post_init__(self) -> None:
        for key in ("discovery_prefix", "status_topic"):
            _check_prefix(key, getattr(self, key))
        if self.node_id and not re.match(r"^[A-Za-z0-9_-]+$", self.node_id):
            raise ValueError(f"node_id: {self.node_id!r} may only hold letters, digits, _ and -")


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """Broker connection and topics (Frigate's shape under ``topic_prefix``)."""

    enabled: bool = field(default=True, metadata={"doc": "publish to MQTT at all"})
    host: str = field(default="localhost", metadata={"doc": "broker host name or address", "min": 1})
    port: int = field(default=1883, metadata={"doc": "broker port (8883 is usual for TLS)", "min": 1, "max": 65535})
    protocol: str = field(default="5", metadata={
        "doc": "MQTT version; 5 falls back to 3.1.1 when the broker refuses it", "choices": ("5", "3.1.1")})
    topic_prefix: str = field(default="faceagent", metadata={"doc": "first level(s) of every topic", "min": 1})
    client_id: str = field(default="", metadata={
        "doc": "client id, unique per broker (one per Pi in a fleet); empty: faceagent-<hostname>"})
    keepalive: int = field(default=30, metadata={"doc": "seconds between keepalive pings", "min": 5, "max": 3600})
    qos: int = field(default=1, metadata={
        "doc": "QoS of events (1 or 2; the outbox needs the broker's acknowledgement)", "choices": (1, 2)})
    session_expiry: int = field(default=300, metadata={
        "doc": "MQTT 5 session expiry in seconds, so a short outage resumes the session", "min": 0,
        "max": 86400})
    reconnect_min: float = field(default=1.0, metadata={
        "doc": "first reconnect delay in seconds (doubles up to reconnect_max)", "min": 0.1, "max": 60.0})
    reconnect_max: float = field(default=30.0, metadata={"doc": "longest reconnect delay", "min": 1.0, "max": 3600.0})
    username: str = field(default="", metadata={"doc": "user name; empty: anonymous"})
    password: str = field(default="", repr=False, metadata={
        "doc": "password; keep it out of this file (use password_env or a credential file)", "secret": True})
    password_env: str = field(default="FACEAGENT_MQTT_PASSWORD", metadata={
        "doc": "environment variable holding the password"})
    password_credential: str = field(default="mqtt-password", metadata={
        "doc": "file name in $CREDENTIALS_DIRECTORY (systemd LoadCredential=) holding the password"})
    tls: bool = field(default=False, metadata={"doc": "use TLS (implied by tls_ca_certs); system CAs if no CA given"})
    tls_ca_certs: Path | None = field(default=None, metadata={"doc": "CA certificate(s) file (PEM) to trust"})
    tls_client_cert: Path | None = field(default=None, metadata={"doc": "client certificate (PEM)"})
    tls_client_key: Path | None = field(default=None, metadata={"doc": "client private key (PEM)"})
    tls_insecure: bool = field(default=False, metadata={
        "doc": "skip the host name check of the broker certificate (testing only)"})
    outbox: OutboxConfig = field(default_factory=OutboxConfig, metadata={"doc": "on-disk outbox of events"})
    home_assistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig, metadata={
        "doc": "Home Assistant discovery"})

    def __post_init__(self) -> None:
        _check_prefix("topic_prefix", self.topic_prefix)
        if problem := host_problem(self.host):
            raise ValueError(f"host: {self.host[:80]!r} {problem}")
        if not CLIENT_ID.match(self.client_id):
            raise ValueError(f"client_id: {self.client_id[:80]!r} may only hold letters, digits, _ . - (at most 64)")
        if (self.tls_client_cert is None) != (self.tls_client_key is None):
            raise ValueError("tls_client_cert: a client certificate and tls_client_key go together")
        if self.tls_insecure and not self.use_tls:
            raise ValueError("tls_insecure: only meaningful with tls or tls_ca_certs")
        if self.reconnect_max < self.reconnect_min:
            raise ValueError("reconnect_max: must not be below reconnect_min")

    @property
    def use_tls(self) -> bool:
        """Whether the connection is encrypted."""
        return self.tls or self.tls_ca_certs is not None or self.tls_client_cert is not None

    def __repr__(self) -> str:
        auth = f"{self.username}:***@" if self.username else ""
        scheme = "mqtts" if self.use_tls else "mqtt"
        return f"MqttConfig({scheme}://{auth}{self.host}:{self.port} prefix={self.topic_prefix!r})"


def check_tls_files(config: MqttConfig) -> None:
    """Make sure each configured TLS file can be read, naming the config key if not.

    File access belongs here rather than in a validator: it runs once, when the daemon starts
    or `check-config` runs, not while the tree is built.

    Raises:
        ConfigError: ``mqtt.<key>: <path>: <why>``.
    """
    for key in ("tls_ca_certs", "tls_client_cert", "tls_client_key"):
        path: Path | None = getattr(config, key)
        if path is None:
            continue
        try:
            with path.open("rb") as handle:
                handle.read(1)
        except OSError as exc:
            raise ConfigError(f"mqtt.{key}: {path}: {exc.strerror or exc}") from None
