"""The delivery thread between the frame loop and the outbox: order, logged only once stored, shutdown."""

from __future__ import annotations

import threading
from pathlib import Path

from broker_fixtures import face

from rpi_agent.domain import FaceEvent
from rpi_agent.runtime.handoff import EventHandoff
from rpi_agent.sinks.outbox import Outbox


def _events(camera: str, first: int, count: int) -> tuple[FaceEvent, ...]:
    made = [face(camera, f"id-{n}") for n in range(first, first + count)]
    return tuple(FaceEvent("new", f, f) for f in made)


def test_events_are_stored_in_order_and_logged_after_their_commit(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_messages=1000)
    logged: list[str] = []
    on_disk_when_logged: list[bool] = []

    def store(events):
        outbox.append_many("t", [e.after.id.encode() for e in events], qos=1)

    def stored(events):
        waiting = {entry.payload for entry in outbox.pending(after=0, limit=1000)}
        on_disk_when_logged.append(all(e.after.id.encode() in waiting for e in events))
        logged.extend(e.after.id for e in events)

    handoff = EventHandoff(store=store, stored=stored)
    handoff.start()
    for frame in range(50):
        handoff.put(_events("door", frame * 3, 3))
        handoff.put(())  # a frame without events is not queued at all
    assert handoff.drain(10.0) and handoff.pending == 0
    handoff.close()
    expected = [f"id-{n}" for n in range(150)]
    assert logged == expected
    assert [e.payload.decode() for e in outbox.pending(after=0, limit=1000)] == expected
    assert all(on_disk_when_logged)
    outbox.close()


def test_a_failed_store_is_not_logged_and_the_thread_goes_on() -> None:
    logged: list[str] = []
    calls = [0]

    def store(events):
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("disk on fire")

    handoff = EventHandoff(store=store, stored=lambda events: logged.extend(e.after.id for e in events))
    handoff.start()
    handoff.put(_events("door", 0, 2))
    assert handoff.drain(10.0)
    handoff.put(_events("door", 2, 2))
    assert handoff.drain(10.0)
    handoff.close()
    assert logged == ["id-2", "id-3"] and handoff.errors == 1


def test_close_stores_everything_queued_even_when_the_store_is_slow() -> None:
    gate = threading.Event()
    stored: list[str] = []

    def store(events):
        gate.wait(5.0)

    handoff = EventHandoff(store=store, stored=lambda events: stored.extend(e.after.id for e in events))
    handoff.start()
    for frame in range(5):
        handoff.put(_events("door", frame, 1))
    assert handoff.pending >= 1
    threading.Timer(0.05, gate.set).start()
    handoff.close()
    assert stored == [f"id-{n}" for n in range(5)]
    handoff.put(_events("door", 5, 1))  # after close: stored when closed again, never dropped silently
    handoff.close()
    assert stored[-1] == "id-5"


def test_without_a_thread_drain_stores_on_the_callers_thread() -> None:
    stored: list[str] = []
    handoff = EventHandoff(store=lambda events: None, stored=lambda events: stored.extend(e.after.id for e in events))
    handoff.put(_events("door", 0, 2))
    assert handoff.drain(1.0) and stored == ["id-0", "id-1"]
