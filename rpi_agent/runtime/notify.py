"""systemd's notify protocol over ``$NOTIFY_SOCKET``, with the standard library only.

``Type=notify`` units tell systemd ``READY=1`` once started, ``STATUS=...`` for ``systemctl status``,
``WATCHDOG=1`` at least every ``WatchdogSec`` (systemd passes it as ``$WATCHDOG_USEC``) and
``STOPPING=1`` when shutting down. Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op.

Example:
    >>> notifier = Notifier.from_env()
    >>> notifier.ready(status="running")  # no-op outside systemd
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends datagrams to systemd's notify socket.

    Args:
        address: The socket path; a leading ``@`` means Linux's abstract namespace. ``None`` disables.
        watchdog_usec: The watchdog period in microseconds, or 0 when the watchdog is off.
        clock: Monotonic clock, for tests.
    """

    def __init__(self, address: str | None, *, watchdog_usec: int = 0, clock=time.monotonic) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._clock = clock
        self._last_ping = float("-inf")
        self._sock: socket.socket | None = None
        self._failing = False
        if address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Read ``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID`` (the watchdog is ours only
        when ``WATCHDOG_PID`` is unset or our pid)."""
        env = os.environ if environ is None else environ
        watchdog = 0
        pid = env.get("WATCHDOG_PID", "")
        if not pid or pid == str(os.getpid()):
            try:
                watchdog = max(0, int(env.get("WATCHDOG_USEC", "0")))
            except ValueError:
                log.warning("ignoring WATCHDOG_USEC=%r: not an integer", env.get("WATCHDOG_USEC"))
        return cls(env.get("NOTIFY_SOCKET") or None, watchdog_usec=watchdog)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between pings: half the watchdog period, as systemd advises; ``None`` when off."""
        return self.watchdog_usec / 2e6 if self.watchdog_usec and self.enabled else None

    def send(self, *lines: str) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram; returns whether it was sent.

        Failures are logged, never raised: losing systemd must not stop the daemon.
        """
        if self._sock is None or self.address is None:
            return False
        address = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            self._sock.sendto("\n".join(lines).encode(), address)
        except OSError as exc:
            if not self._failing:  # once per outage, not on every watchdog ping
                log.warning("systemd notify to %s failed: %s", self.address, exc)
            self._failing = True
            return False
        self._failing = False
        return True

    def ready(self, *, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def stopping(self, *, status: str = "stopping") -> bool:
        return self.send("STOPPING=1", f"STATUS={status}")

    def watchdog(self, *, force: bool = False) -> bool:
        """Ping the watchdog if half a period has passed since the last ping (or ``force``)."""
        interval = self.watchdog_interval
        if interval is None:
            return False
        now = self._clock()
        if not force and now - self._last_ping < interval:
            return False
        self._last_ping = now
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
