"""The hand-over between the frame loop and event delivery: events in, stored and logged in order.

Storing a frame's events (JSON payloads, one outbox transaction) and logging them costs about as
much as detecting the frame when a crowd makes a dozen events a frame. The frame loop only appends
the frame's events (plain frozen objects, no pixels) to a queue, O(1); the delivery thread stores
what has queued up, several frames in one transaction when it is behind, and logs each event only
after its transaction committed, so a logged event is on disk (and reaches the broker eventually,
across a SIGKILL).

Example:
    >>> handoff = EventHandoff(store=sink.store_events, stored=log_events)  # doctest: +SKIP
    >>> handoff.start(); handoff.put(result.events); handoff.close()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence

from rpi_agent.domain import FaceEvent

log = logging.getLogger(__name__)

BATCH_MAX = 64
"""Most frames whose events go in one transaction (a backlog goes in several)."""
CLOSE_TIMEOUT = 10.0


class EventHandoff:
    """A queue and the thread that empties it.

    Args:
        store: Stores events for delivery, in order (the MQTT sink's ``store_events``); returns once
            they are on disk (or counted as lost by the sink).
        stored: Called with the same events after ``store`` returned (logging them).
    """

    def __init__(self, *, store: Callable[[Sequence[FaceEvent]], None],
                 stored: Callable[[Sequence[FaceEvent]], None]) -> None:
        self._store = store
        self._stored = stored
        self._queue: deque[Sequence[FaceEvent]] = deque()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.errors = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="delivery", daemon=True)
        self._thread.start()

    def put(self, events: Sequence[FaceEvent]) -> None:
        """Queue one frame's events (frame loop; never waits for the delivery side's work)."""
        if not events:
            return
        self._idle.clear()
        self._queue.append(events)
        self._wake.set()

    @property
    def pending(self) -> int:
        """Frames whose events are queued or being stored."""
        return len(self._queue) + (0 if self._idle.is_set() else 1)

    def drain(self, timeout: float) -> bool:
        """Wait until everything queued so far is stored and logged; returns whether it was."""
        if self._thread is None or not self._thread.is_alive():
            self._run_once()
            return not self._queue
        return self._idle.wait(timeout)

    def close(self) -> None:
        """Store and log what is queued, then end the thread; idempotent."""
        self._closing = True
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(CLOSE_TIMEOUT)
            if thread.is_alive():
                log.error("delivery: %d frame(s) of events not stored within %.0f s of the shutdown", len(self._queue),
                          CLOSE_TIMEOUT)
                return
        self._run_once()  # never started, or anything put after the thread ended

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self._run_once()
            if self._closing and not self._queue:
                return

    def _run_once(self) -> None:
        while self._queue:
            batch = [e for _ in range(min(BATCH_MAX, len(self._queue))) for e in self._queue.popleft()]
            try:
                self._store(batch)
            except Exception:  # the thread must live on: later events still need storing
                self.errors += 1
                log.exception("delivery: storing %d event(s) failed", len(batch))
                continue  # not stored: not logged as events either
            try:
                self._stored(batch)
            except Exception:
                log.exception("delivery: logging events failed")
        if not self._queue:
            self._idle.set()
            if self._queue:  # a put between the check and set(): not idle after all
                self._idle.clear()
                self._wake.set()
