"""Bookkeeping between the outbox and the MQTT client: what is in flight, what may go next.

The sink hands outbox entries to the client in ``seq`` order, at most ``window`` unacknowledged
at a time, and only while connected. After a reconnect the client first re-sends what it still
holds; new entries wait until those are acknowledged (``draining``), which keeps the order.
No MQTT library here: message ids (``mid``) are plain ints.

Example:
    >>> d = Delivery(window=2)
    >>> d.connected()
    >>> d.room()
    2
    >>> d.sent(mid=7, seq=1)
    False
    >>> d.acked(7)
    1
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

EARLY_ACK_TTL = 30.0
"""An acknowledgement may arrive before the sender has recorded the mid; it is kept this long."""


class Delivery:
    """Thread-safe in-flight table (mid → outbox seq) and the hand-over window."""

    def __init__(self, *, window: int, drain_timeout: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.drain_timeout = drain_timeout
        self._clock = clock
        self._drain_since = 0.0
        self._lock = threading.Lock()
        self._inflight: dict[int, int] = {}
        self._early: dict[int, float] = {}
        self._handed = 0
        self._connected = False
        self._draining = False

    @property
    def handed(self) -> int:
        """Highest outbox seq given to the client since the last :meth:`reset`."""
        with self._lock:
            return self._handed

    @property
    def inflight(self) -> int:
        with self._lock:
            return len(self._inflight)

    @property
    def is_connected(self) -> bool:
        with self._lock:
            return self._connected

    def room(self) -> int:
        """How many more entries may be handed over now (0 while offline or draining)."""
        with self._lock:
            if self._draining and self._clock() - self._drain_since > self.drain_timeout:
                self._give_up_draining()
            if not self._connected or self._draining:
                return 0
            return max(0, self.window - len(self._inflight))

    def _give_up_draining(self) -> None:
        # The client should re-send what it holds; if no acknowledgement comes, send those
        # entries again from the outbox rather than stall forever (duplicates beat silence).
        logger.warning("MQTT: %d events unacknowledged %.0f s after reconnecting; sending them again",
                       len(self._inflight), self.drain_timeout)
        self._handed = min(self._inflight.values(), default=self._handed + 1) - 1
        self._inflight.clear()
        self._draining = False

    def sent(self, *, mid: int, seq: int) -> bool:
        """Record that entry ``seq`` went out as ``mid``.

        Returns:
            True if its acknowledgement already came in (the entry can be removed now).
        """
        with self._lock:
            self._handed = max(self._handed, seq)
            stamp = self._early.pop(mid, None)
            if stamp is not None and self._clock() - stamp < EARLY_ACK_TTL:
                return True
            self._inflight[mid] = seq
            return False

    def acked(self, mid: int) -> int | None:
        """The outbox seq acknowledged by ``mid``, or ``None`` if it is not an outbox message (yet)."""
        now = self._clock()
        with self._lock:
            seq = self._inflight.pop(mid, None)
            if seq is None:
                self._early[mid] = now
                if len(self._early) > 256:
                    self._early = {m: t for m, t in self._early.items() if now - t < EARLY_ACK_TTL}
                return None
            if self._draining and not self._inflight:
                self._draining = False
            return seq

    def oldest_inflight(self) -> int | None:
        """The lowest outbox seq handed over and not yet acknowledged."""
        with self._lock:
            return min(self._inflight.values(), default=None)

    def forget(self, seq: int) -> None:
        """Stop waiting for entry ``seq`` (it was set aside); later entries may go."""
        with self._lock:
            self._inflight = {m: s for m, s in self._inflight.items() if s != seq}
            self._handed = max(self._handed, seq)
            if self._draining and not self._inflight:
                self._draining = False

    def connected(self) -> None:
        """The session is up; what the client still holds goes first."""
        with self._lock:
            self._connected = True
            self._draining = bool(self._inflight)
            self._drain_since = self._clock()

    def disconnected(self) -> None:
        with self._lock:
            self._connected = False

    def reset(self) -> None:
        """Forget everything in flight (a new client object holds nothing): replay from the outbox."""
        with self._lock:
            self._inflight.clear()
            self._early.clear()
            self._handed = 0
            self._draining = False
