"""Connection helpers for the MQTT sink that need no MQTT library: client ids and error lines."""

from __future__ import annotations

import socket
import ssl


def default_client_id() -> str:
    """``faceagent-<hostname>``, reduced to characters every broker accepts."""
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:40]
    return f"faceagent-{host or 'host'}"


def describe_connect_error(exc: OSError) -> str:
    """One line saying why a connection attempt failed, with the config key to look at."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate check failed: {exc.verify_message} (check mqtt.tls_ca_certs and mqtt.host)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc} (check the mqtt.tls_* settings)"
    return exc.strerror or str(exc) or type(exc).__name__


def refusal_hint(reason: str) -> str:
    """A hint to add to a CONNACK refusal."""
    lowered = reason.lower()
    if "user name or password" in lowered or "not authorized" in lowered:
        return " (check mqtt.username and the password credential)"
    if "identifier" in lowered:
        return " (check mqtt.client_id)"
    return ""
