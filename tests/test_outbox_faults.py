"""Fault injection for the outbox: disk full, read-only, a foreign file, a second process.

Each message is either stored (and later delivered) or counted in ``dropped``; none is lost
silently. The disk is a real 16 MiB tmpfs, filled up with a ballast file, when this process may
mount one (root, as in CI); otherwise SQLite's ``max_page_count`` pragma makes the same error. A file system that turns
read-only under an open file cannot be remounted (it is busy), so ``query_only`` stands in for it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_fixtures import WAIT, event_result, sink_config

from rpi_agent.sinks.mqtt import OUTBOX_FILE, MqttSink
from rpi_agent.sinks.outbox import Outbox, OutboxError

PAYLOAD = b'{"message_id": "' + b"e" * 300 + b'"}'


class Disk:
    """A directory whose free space and writability the test controls."""

    def __init__(self, path: Path, mounted: bool) -> None:
        self.path = path
        self.mounted = mounted

    def limit(self, box: Outbox) -> None:
        """Make the file system (or the file) full from here on."""
        if self.mounted:
            ballast = self.path / "ballast"
            with contextlib.suppress(OSError), ballast.open("wb") as out:
                while True:
                    out.write(b"\0" * 4096)
                    out.flush()
        else:
            pages = box._conn().execute("PRAGMA page_count").fetchone()[0]
            box._conn().execute(f"PRAGMA max_page_count = {pages + 2}")

    def free(self, box: Outbox) -> None:
        """Room again."""
        if self.mounted:
            (self.path / "ballast").unlink()
        else:
            box._conn().execute("PRAGMA max_page_count = 1000000")

    @staticmethod
    def read_only(box: Outbox, on: bool) -> None:
        box._conn().execute(f"PRAGMA query_only = {int(on)}")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    path = tmp_path / "disk"
    path.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(path)], capture_output=True, check=False,
    ).returncode == 0
    yield Disk(path, mounted)
    if mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(box: Outbox, disk: Disk, attempts: int = 400) -> tuple[int, list[str]]:
    """Append until the disk is full and then some; returns (stored, error messages)."""
    for i in range(50):
        box.append("t/events", PAYLOAD + b"warm %d" % i)  # the WAL has grown to its working size
    for entry in box.pending():
        box.remove(entry.seq)
    disk.limit(box)
    stored, errors = 0, []
    for i in range(attempts):
        try:
            box.append("t/events", PAYLOAD + str(i).encode())
            stored += 1
        except OutboxError as exc:
            errors.append(str(exc))
    return stored, errors


def test_disk_full_names_the_cause_and_counts_every_message_not_stored(disk: Disk):
    path = disk.path / "o.sqlite3"
    with Outbox(path, max_messages=100000) as box:
        stored, errors = _fill(box, disk)
        assert errors, "the disk never filled up"
        assert all("database or disk is full" in e for e in errors), set(errors)
        assert not any("no transaction" in e for e in errors)
        assert len(box) == stored and box.dropped == len(errors)
        assert stored + box.dropped == 400
        # Room again: the next append stores the count on disk too.
        disk.free(box)
        box.append("t/events", b"after")
        assert box.dropped == len(errors)
    with Outbox(path, max_messages=100000) as box:
        assert box.dropped == len(errors) and len(box) == stored + 1


def test_a_batch_on_a_full_disk_is_stored_whole_or_not_at_all_and_counted(disk: Disk):
    path = disk.path / "o.sqlite3"
    with Outbox(path, max_messages=100000) as box:
        _, errors = _fill(box, disk, attempts=50)
        assert errors, "the disk never filled up"
        before, dropped = [e.payload for e in box.pending()], box.dropped
        batch = [PAYLOAD + b"batch %d" % k for k in range(5)]
        for _ in range(3):
            with pytest.raises(OutboxError, match="database or disk is full"):
                box.append_many("t/events", batch)
        assert [e.payload for e in box.pending()] == before and box.dropped == dropped + 15
        disk.free(box)
        assert len(box.append_many("t/events", batch)) == 5
        assert [e.payload for e in box.pending()] == before + batch and box.dropped == dropped + 15


def test_read_only_file_system_counts_and_recovers(disk: Disk):
    path = disk.path / "o.sqlite3"
    with Outbox(path, max_messages=1000) as box:
        box.append("t", b"before")
        disk.read_only(box, True)
        try:
            for _ in range(5):
                with pytest.raises(OutboxError, match=r"readonly|read-only"):
                    box.append("t", b"lost")
            assert box.dropped == 5 and len(box) == 1
        finally:
            disk.read_only(box, False)
        box.append("t", b"after")
    with Outbox(path, max_messages=1000) as box:
        assert [e.payload for e in box.pending()] == [b"before", b"after"] and box.dropped == 5


def test_read_only_state_dir_at_start_is_an_outbox_error(disk: Disk):
    if disk.mounted:
        subprocess.run(["mount", "-o", "remount,ro", str(disk.path)], check=True)
    else:
        disk.path.chmod(0o500)
    try:
        with pytest.raises(OutboxError, match="cannot open"):
            Outbox(disk.path / "o.sqlite3", max_messages=10)
    finally:
        if disk.mounted:
            subprocess.run(["mount", "-o", "remount,rw", str(disk.path)], check=True)
        disk.path.chmod(0o700)


@pytest.mark.parametrize("schema", [
    "CREATE TABLE outbox (id INTEGER PRIMARY KEY, data TEXT)",
    "CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('alice')",
    "CREATE TABLE counters (name TEXT, value INTEGER, extra TEXT)",
])
def test_a_foreign_database_is_set_aside_untouched(tmp_path: Path, caplog, schema: str):
    path = tmp_path / "o.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as other:
        other.executescript(schema)
    before = path.read_bytes()
    with caplog.at_level(logging.ERROR), Outbox(path, max_messages=10) as box:
        assert len(box) == 0
        box.append("t", b"x")
        assert [e.payload for e in box.pending()] == [b"x"]
    aside = list(tmp_path.glob("o.sqlite3.foreign-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == before
    assert any("not an outbox" in r.getMessage() for r in caplog.records)


def test_a_foreign_database_does_not_stop_the_sink(tmp_path: Path):
    state = tmp_path / "state"
    state.mkdir()
    with contextlib.closing(sqlite3.connect(state / OUTBOX_FILE)) as other:
        other.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, data TEXT)")

    class Unreachable:
        host, port = "127.0.0.1", 9

    sink = MqttSink(sink_config(Unreachable()), cameras=["door"], outbox_dir=state,  # type: ignore[arg-type]
                    on_command=lambda *a: None, sw_version="t")
    assert len(sink.outbox) == 0
    sink.close()


CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from rpi_agent.sinks.outbox import Outbox
    box = Outbox(Path(sys.argv[1]), max_messages=100)
    for i in range(int(sys.argv[2])):
        box.append("t", b"child %d" % i)
    box.close()
""")


def test_two_processes_on_one_outbox_lose_nothing_uncounted(tmp_path: Path):
    """Both append under one bound; this one also removes (acknowledges) the other's entries."""
    path = tmp_path / "o.sqlite3"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    box = Outbox(path, max_messages=100)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), "400"], env=env)
    removed = 0
    try:
        for i in range(200):
            box.append("t", b"parent %d" % i)
            for entry in box.pending(limit=2):
                removed += box.remove(entry.seq)
            assert len(box) >= 0
    finally:
        assert child.wait(timeout=120) == 0
    rows = len(box.pending())
    # Each process keeps the bound by its own count, so together they may pass it a little; but
    # every message is still in the file, removed (acknowledged) or counted as dropped.
    assert rows <= 300
    assert rows + box.dropped + removed == 600, (rows, box.dropped, removed)
    box.close()


def test_sink_with_a_full_disk_and_the_broker_down_delivers_or_counts_every_event(disk: Disk, broker, recorder,
                                                                                   make_sink, caplog):
    rec = recorder(["faceagent/events"])
    broker.stop()
    with caplog.at_level(logging.ERROR, logger="rpi_agent.sinks"):
        sink = make_sink(sink_config(broker), outbox_dir=disk.path)
        for _ in range(30):
            sink.publish(event_result())
        disk.limit(sink.outbox)
        sent = []
        for _ in range(200):
            result = event_result()
            sent.append(result.events[0].after.id)
            sink.publish(result)
        dropped = sink.stats()["outbox_dropped"]
        disk.free(sink.outbox)
        broker.start()

        def received() -> set[str]:
            return {json.loads(p)["after"]["id"] for p in rec.payloads("faceagent/events")}

        assert rec.wait_for(lambda: len(received() & set(sent)) + dropped >= len(sent), WAIT), sink.stats()
    assert isinstance(dropped, int) and dropped > 0, "the disk never filled up"
    errors = [r.getMessage() for r in caplog.records if "cannot store" in r.getMessage()]
    assert errors and all("database or disk is full" in m for m in errors), errors
    assert "no transaction is active" not in caplog.text
