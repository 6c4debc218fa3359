"""The ``[status]`` section: the live status page (off by default, loopback by default).

Pure data following the field convention of :mod:`rpi_agent.config.schema`. The token is never read
here: ``token_env`` and ``token_credential`` only name where it lives, and the server reads it when
it starts (a page bound to anything but loopback refuses to start without one).

Example (``config.toml``)::

    [status]
    enabled = true
    host = "0.0.0.0"
    port = 8080
    token_credential = "status-token"
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

LOOPBACK_NAMES = ("localhost", "ip6-localhost", "ip6-loopback")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (``127.0.0.0/8``, ``::1``, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class StatusConfig:
    """A small web page showing what the daemon sees; costs nothing while nobody looks at it."""

    enabled: bool = field(default=False, metadata={"doc": "serve the status page"})
    host: str = field(default="127.0.0.1", metadata={
        "doc": "address to listen on; anything but loopback needs a token", "min": 1})
    port: int = field(default=8080, metadata={"doc": "TCP port (0: any free port, logged)", "min": 0,
                                              "max": 65535})
    token: str = field(default="", repr=False, metadata={
        "doc": "access token; keep it out of this file (use token_env or a credential file)", "secret": True})
    token_env: str = field(default="FACEAGENT_STATUS_TOKEN", metadata={
        "doc": "environment variable holding the access token"})
    token_credential: str = field(default="status-token", metadata={
        "doc": "file name in $CREDENTIALS_DIRECTORY (systemd LoadCredential=) holding the access token"})
    refresh_seconds: float = field(default=1.0, metadata={
        "doc": "how often the page asks for new data", "min": 0.2, "max": 60.0})
    events: int = field(default=12, metadata={"doc": "last events shown, with thumbnails", "min": 1, "max": 100})
    quality: int = field(default=75, metadata={"doc": "JPEG quality of the frames served", "min": 10, "max": 100})

    def __post_init__(self) -> None:
        if any(c.isspace() for c in self.host) or "/" in self.host:
            raise ValueError(f"host: {self.host!r} is not a host name or address")

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach the page."""
        return is_loopback(self.host)
