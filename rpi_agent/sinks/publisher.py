"""The outbox publisher: events go to the on-disk outbox, and from it to the broker in order.

:meth:`OutboxPublisher.add` runs on the caller's thread and only writes to the outbox;
everything that touches the client (:meth:`pump`, acknowledgements, connection changes) runs on
the connection's network thread. One entry the broker will not take never blocks the others: an
entry the client refuses, or whose hand-over made the broker close the connection
``MAX_STRIKES`` times running, is set aside in the outbox's ``refused`` table, counted and logged.

Example:
    >>> pub = OutboxPublisher(Outbox(path, max_messages=100), window=20)  # doctest: +SKIP
    >>> pub.add("faceagent/events", b"{}", qos=1)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from rpi_agent.sinks.delivery import Delivery
from rpi_agent.sinks.outbox import Outbox, OutboxError
from rpi_agent.sinks.topics import topic_problem

logger = logging.getLogger(__name__)

MAX_STRIKES = 3
"""Connections in a row the broker closed with the same entry oldest in flight before it is set aside."""
REPUMP_SECONDS = 1.0
"""Look at the outbox at least this often even when nothing announced work (e.g. a drain timeout)."""
UNSTORED_KEPT = 1000
"""Events that could not be stored (disk full) kept in memory to be sent once while connected."""


class Sender(Protocol):
    """The part of the connection the publisher needs (see :class:`~rpi_agent.sinks.connection.MqttConnection`)."""

    @property
    def connected(self) -> bool: ...

    def send(self, topic: str, payload: bytes, *, qos: int, retain: bool = False) -> int | None: ...


def _every(count: int) -> bool:
    """Log the 1st, 10th and every 100th of a repeated problem."""
    return count in (1, 10) or count % 100 == 0


def _crossed(before: int, after: int) -> bool:
    """Whether a count going from ``before`` to ``after`` passed one that :func:`_every` logs."""
    return before < 1 <= after or before < 10 <= after or after // 100 > before // 100


class OutboxPublisher:
    """Outbox + in-flight bookkeeping + the pump.

    Args:
        outbox: The open outbox (the publisher does not close it).
        window: Most unacknowledged entries handed to the client.
        drain_timeout: See :class:`~rpi_agent.sinks.delivery.Delivery`.
    """

    def __init__(self, outbox: Outbox, *, window: int, drain_timeout: float = 60.0) -> None:
        self.outbox = outbox
        self.window = window
        self.delivery = Delivery(window=window, drain_timeout=drain_timeout)
        self._strikes: dict[int, int] = {}
        self._acked: list[int] = []  # acknowledged, removed from the outbox in one transaction per loop turn
        self._unstored: deque[tuple[str, bytes, int]] = deque(maxlen=UNSTORED_KEPT)
        self._due = threading.Event()
        self._last_pump = 0.0
        self._store_failures = 0
        self._errors = 0

    def add(self, topic: str, payload: bytes, *, qos: int) -> None:
        """Store one event for delivery (any thread). An event that cannot be stored is counted as dropped."""
        self.add_many(topic, (payload,), qos=qos)

    def add_many(self, topic: str, payloads: Sequence[bytes], *, qos: int) -> None:
        """Store several events in one outbox transaction, committed before any of them can be sent.

        Events that cannot be stored are counted as dropped and kept in memory to be sent once.
        """
        if not payloads:
            return
        try:
            self.outbox.append_many(topic, payloads, qos=qos)
        except OutboxError as exc:
            before = self._store_failures
            self._store_failures += len(payloads)
            if _crossed(before, self._store_failures):
                logger.error("MQTT: %s; counted in outbox_dropped (%d so far), sent once if the broker is "
                             "connected", exc, self._store_failures)
            self._unstored.extend((topic, payload, qos) for payload in payloads)
        self._due.set()

    def waiting(self) -> bool:
        return len(self.outbox) > 0 or bool(self._unstored)

    def connected(self, receive_maximum: int | None) -> None:
        # paho ignores the broker's Receive Maximum (mosquitto: 20); stay within it.
        self.delivery.window = min(self.window, receive_maximum or self.window)
        self.delivery.connected()
        self._due.set()

    def disconnected(self) -> list[int]:
        """The connection dropped; strike the oldest entry in flight. Returns the seqs set aside."""
        self.flush()
        was_connected = self.delivery.is_connected
        self.delivery.disconnected()
        oldest = self.delivery.oldest_inflight()
        if not was_connected or oldest is None:
            return []
        self._strikes = {oldest: self._strikes.get(oldest, 0) + 1}
        if self._strikes[oldest] < MAX_STRIKES:
            return []
        self._strikes.clear()
        self._set_aside(oldest, f"the broker closed the connection each of the {MAX_STRIKES} times it was sent")
        return [oldest]

    def reset(self) -> None:
        """A new client holds nothing: replay from the outbox."""
        self.flush()
        self.delivery.reset()
        self._due.set()

    def acked(self, mid: int, refusal: str | None) -> None:
        seq = self.delivery.acked(mid)
        if seq is None:
            return
        self._strikes.pop(seq, None)
        if refusal is not None:
            self._set_aside(seq, f"the broker refused it: {refusal}")
        else:
            self._acked.append(seq)
        self._due.set()

    def flush(self) -> None:
        """Remove the acknowledged entries from the outbox (network thread, or after it ended).

        Acknowledgements are collected and removed together, once per loop turn: one commit for
        many. One not yet removed when the process dies is sent again (consumers drop duplicates).
        """
        if not self._acked:
            return
        seqs, self._acked = self._acked, []
        try:
            self.outbox.remove_many(seqs)
        except OutboxError as exc:
            self._count_error(str(exc))

    def pump(self, link: Sender) -> None:
        """Hand waiting entries to the client, in order, within the window (network thread)."""
        self.flush()
        now = time.monotonic()
        if not self._due.is_set() and now - self._last_pump < REPUMP_SECONDS:
            return
        self._due.clear()
        self._last_pump = now
        try:
            self._send_unstored(link)
            room = self.delivery.room()
            if room <= 0:
                return
            entries = self.outbox.pending(after=self.delivery.handed, limit=room)
            for entry in entries:
                problem = topic_problem(entry.topic)
                if problem is not None:
                    self._set_aside(entry.seq, f"its topic {problem}")
                    continue
                try:
                    mid = link.send(entry.topic, entry.payload, qos=entry.qos, retain=entry.retain)
                except ValueError as exc:
                    self._set_aside(entry.seq, f"the client will not send it: {exc}")
                    continue
                if mid is None:
                    return
                if self.delivery.sent(mid=mid, seq=entry.seq):
                    self._acked.append(entry.seq)
                if not link.connected:
                    return
            if len(entries) == room:
                self._due.set()  # more may wait behind these; look again next turn
        except OutboxError as exc:
            self._count_error(str(exc))

    def _send_unstored(self, link: Sender) -> None:
        while self._unstored:
            topic, payload, qos = self._unstored[0]
            try:
                if link.send(topic, payload, qos=qos) is None:
                    return
            except ValueError as exc:
                self._count_error(f"an event that could not be stored was not sent either: {exc}")
            self._unstored.popleft()

    def _set_aside(self, seq: int, reason: str) -> None:
        self.delivery.forget(seq)
        try:
            self.outbox.set_aside(seq, reason)
            refused = self.outbox.refused
        except OutboxError as exc:
            self._count_error(str(exc))
            return
        if _every(refused):
            logger.error("MQTT: event #%d set aside: %s (%d so far; kept in the outbox's refused table)",
                         seq, reason, refused)

    def _count_error(self, message: str) -> None:
        self._errors += 1
        if _every(self._errors):
            logger.error("MQTT: %s (%d outbox errors so far)", message, self._errors)

    def stats(self) -> dict[str, object]:
        """``outbox_waiting``, ``outbox_dropped`` (bound hit or not storable), ``refused`` (set aside)."""
        try:
            dropped, refused = self.outbox.dropped, self.outbox.refused
        except OutboxError as exc:
            self._count_error(str(exc))
            dropped = refused = -1
        return {"outbox_waiting": len(self.outbox), "outbox_dropped": dropped, "refused": refused,
                "outbox_errors": self._errors}
