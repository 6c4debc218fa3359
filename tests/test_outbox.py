"""The on-disk outbox: order, removal, the bound, persistence across reopen and a killed process."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rpi_agent.sinks.outbox import Outbox, OutboxError


def _payloads(box: Outbox) -> list[bytes]:
    return [e.payload for e in box.pending()]


def test_entries_come_back_in_order_and_leave_when_removed(tmp_path: Path):
    with Outbox(tmp_path / "o.sqlite3", max_messages=100) as box:
        seqs = [box.append("t/events", f"e{i}".encode()) for i in range(5)]
        assert seqs == sorted(seqs) and len(set(seqs)) == 5
        assert _payloads(box) == [b"e0", b"e1", b"e2", b"e3", b"e4"]
        box.remove(seqs[1])
        box.remove(seqs[1])  # twice: ignored
        assert _payloads(box) == [b"e0", b"e2", b"e3", b"e4"] and len(box) == 4
        assert [e.payload for e in box.pending(after=seqs[2], limit=1)] == [b"e3"]
        entry = box.pending()[0]
        assert (entry.topic, entry.qos, entry.retain) == ("t/events", 1, False)


def test_bound_drops_the_oldest_and_the_count_survives_reopen(tmp_path: Path):
    path = tmp_path / "o.sqlite3"
    with Outbox(path, max_messages=10) as box:
        for i in range(25):
            box.append("t", str(i).encode())
        assert len(box) == 10 and box.dropped == 15
        assert _payloads(box) == [str(i).encode() for i in range(15, 25)]
    with Outbox(path, max_messages=10) as box:
        assert len(box) == 10 and box.dropped == 15
        box.append("t", b"25")
        assert box.dropped == 16 and _payloads(box)[0] == b"16"


def test_a_smaller_bound_after_restart_trims_on_the_next_append(tmp_path: Path):
    path = tmp_path / "o.sqlite3"
    with Outbox(path, max_messages=100) as box:
        for i in range(30):
            box.append("t", str(i).encode())
    with Outbox(path, max_messages=10) as box:
        box.append("t", b"30")
        assert len(box) == 10 and box.dropped == 21
        assert _payloads(box) == [str(i).encode() for i in range(21, 31)]


def test_sequence_numbers_keep_growing_after_everything_was_removed(tmp_path: Path):
    path = tmp_path / "o.sqlite3"
    with Outbox(path, max_messages=10, sync="full") as box:
        last = box.append("t", b"a")
        box.remove(last)
    with Outbox(path, max_messages=10) as box:
        assert box.append("t", b"b") > last


CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from rpi_agent.sinks.outbox import Outbox
    box = Outbox(Path(sys.argv[1]), max_messages=100000, sync=sys.argv[2])
    i = 0
    while True:
        box.append("t", str(i).encode())
        print(i, flush=True)
        i += 1
""")


@pytest.mark.parametrize("sync", ["normal", "full"])
def test_every_acknowledged_append_survives_sigkill(tmp_path: Path, sync: str):
    path = tmp_path / "o.sqlite3"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), sync], stdout=subprocess.PIPE, env=env)
    assert child.stdout is not None
    lines = [child.stdout.readline() for _ in range(300)]
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    lines += child.stdout.read().splitlines()
    child.stdout.close()
    written = [int(x) for x in lines if x.strip()]
    with Outbox(path, max_messages=100000) as box:
        stored = [int(p) for p in _payloads(box)]
    # Everything the child reported as stored is there; at most one more (killed before printing).
    assert stored[: len(written)] == written
    assert len(stored) - len(written) in (0, 1)


def test_unwritable_location_is_an_outbox_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutboxError, match="cannot open"):
        Outbox(blocker / "o.sqlite3", max_messages=10)


def test_a_damaged_file_is_set_aside_and_a_fresh_one_used(tmp_path: Path, caplog):
    path = tmp_path / "o.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with Outbox(path, max_messages=10) as box:
        assert len(box) == 0
        box.append("t", b"x")
    aside = list(tmp_path.glob("o.sqlite3.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")
    assert any("damaged" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


def test_bad_arguments_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="max_messages"):
        Outbox(tmp_path / "a", max_messages=0)
    with pytest.raises(ValueError, match="sync"):
        Outbox(tmp_path / "b", max_messages=1, sync="sometimes")


def test_use_after_close_is_an_outbox_error(tmp_path: Path):
    box = Outbox(tmp_path / "o.sqlite3", max_messages=10)
    box.close()
    box.close()
    with pytest.raises(OutboxError, match="closed"):
        box.append("t", b"x")


def test_file_is_plain_sqlite(tmp_path: Path):
    path = tmp_path / "o.sqlite3"
    with Outbox(path, max_messages=10) as box:
        box.append("faceagent/events", b"{}")
    rows = sqlite3.connect(path).execute("SELECT topic, payload FROM outbox").fetchall()
    assert rows == [("faceagent/events", b"{}")]


def test_a_batch_is_one_transaction_with_consecutive_seqs(tmp_path: Path):
    path = tmp_path / "o.sqlite3"
    with Outbox(path, max_messages=100) as box:
        first = box.append("t", b"a")
        seqs = box.append_many("t", [b"b", b"c", b"d"], qos=0)
        assert seqs == [first + 1, first + 2, first + 3] and len(box) == 4
        assert box.append_many("t", []) == []
        # What a second connection sees is what was committed: the whole batch.
        rows = sqlite3.connect(path).execute("SELECT payload, qos FROM outbox ORDER BY seq").fetchall()
        assert rows == [(b"a", 1), (b"b", 0), (b"c", 0), (b"d", 0)]
        assert box.remove_many([seqs[0], seqs[2], 10_000]) == 2
        assert _payloads(box) == [b"a", b"c"] and len(box) == 2


def test_a_batch_past_the_bound_keeps_the_newest_and_counts_the_rest(tmp_path: Path):
    with Outbox(tmp_path / "o.sqlite3", max_messages=5) as box:
        box.append_many("t", [b"0", b"1", b"2"])
        box.append_many("t", [b"3", b"4", b"5", b"6"])
        assert _payloads(box) == [b"2", b"3", b"4", b"5", b"6"] and box.dropped == 2 and len(box) == 5
        box.append_many("t", [str(i).encode() for i in range(7, 15)])  # larger than the bound by itself
        assert _payloads(box) == [b"10", b"11", b"12", b"13", b"14"] and box.dropped == 10 and len(box) == 5


BATCH_CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from rpi_agent.sinks.outbox import Outbox
    box = Outbox(Path(sys.argv[1]), max_messages=1000000)
    i = 0
    while True:
        box.append_many("t", [f"{i}.{k}".encode() for k in range(7)])
        print(i, flush=True)
        i += 1
""")


def test_sigkill_keeps_every_acknowledged_batch_whole(tmp_path: Path):
    path = tmp_path / "o.sqlite3"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    child = subprocess.Popen([sys.executable, "-c", BATCH_CHILD, str(path)], stdout=subprocess.PIPE, env=env)
    assert child.stdout is not None
    lines = [child.stdout.readline() for _ in range(200)]
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    lines += child.stdout.read().splitlines()
    child.stdout.close()
    written = [int(x) for x in lines if x.strip()]
    with Outbox(path, max_messages=1000000) as box:
        stored = [p.decode() for p in _payloads(box)]
    batches = [f"{i}.{k}" for i in range(len(stored) // 7) for k in range(7)]
    # Every batch the child reported is there, whole; at most one more, also whole (never part of one).
    assert stored == batches and len(stored) % 7 == 0
    assert len(stored) // 7 - len(written) in (0, 1)
