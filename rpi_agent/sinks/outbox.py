"""A bounded, crash-safe, on-disk queue of messages waiting for the broker's acknowledgement.

Every event is appended here *before* it is handed to the MQTT client and removed only when the
broker acknowledges it, so neither a broker outage nor a killed daemon loses it: what is left is
sent again, oldest first, on the next connection or start. When ``max_messages`` is reached the
oldest entries are dropped and counted (the count survives restarts). A message that cannot be
stored at all (disk full, file system gone read-only) is counted as dropped too: every message is
either kept or counted. An entry the broker will not take is moved to the ``refused`` table and
counted, so it never blocks the entries behind it.

Storage is SQLite (standard library) in WAL mode. ``sync="normal"`` commits survive a crash of
the process and need few flash writes; ``sync="full"`` also fsyncs every commit so a power cut
loses nothing, at the cost of SD card wear.

Example:
    >>> box = Outbox(Path(tmp) / "outbox.sqlite3", max_messages=100)  # doctest: +SKIP
    >>> seq = box.append("faceagent/events", b"{...}")  # doctest: +SKIP
    >>> [e.seq for e in box.pending()]  # doctest: +SKIP
    [1]
    >>> box.remove(seq)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rpi_agent.errors import FaceAgentError

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS refused (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL,
    created REAL NOT NULL
);
"""
COLUMNS = {"outbox": {"seq", "topic", "payload", "qos", "retain", "created"}, "counters": {"name", "value"},
           "refused": {"seq", "topic", "payload", "reason", "created"}}
RECOUNT_EVERY = 100
"""Appends between exact recounts of the (otherwise cached) number of entries."""
KEEP_REFUSED = 1000
"""Refused entries kept for inspection (``sqlite3 FILE 'SELECT * FROM refused'``); older ones go."""
BUMP = ("INSERT INTO counters(name, value) VALUES(?, ?) "
        "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value")


class OutboxError(FaceAgentError, OSError):
    """The outbox file cannot be opened or written."""


class ForeignFileError(sqlite3.DatabaseError):
    """An SQLite file whose tables are not an outbox's (another program's file at our path)."""


def _rollback(db: sqlite3.Connection) -> None:
    # SQLite may already have rolled back by itself (disk full); a second ROLLBACK would
    # replace the real cause with "no transaction is active".
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            logger.debug("outbox rollback failed: %s", exc)


def _check_ours(db: sqlite3.Connection) -> None:
    """Refuse, before writing anything, a database that holds tables of another program."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    tables.discard("sqlite_sequence")
    if tables and not tables & {"outbox", "counters"}:
        raise ForeignFileError(f"it holds the tables {sorted(tables)[:5]}, none of an outbox")
    for table in tables & COLUMNS.keys():
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if have != COLUMNS[table]:
            raise ForeignFileError(f"table {table} has the columns {sorted(have)}, not an outbox's")


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One waiting message; ``seq`` grows with every append and orders replay."""

    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Outbox:
    """Bounded FIFO of messages on disk, safe to use from several threads.

    Args:
        path: The SQLite file (its directory is created).
        max_messages: Bound; appending past it drops the oldest entries.
        sync: ``"normal"`` or ``"full"`` (see the module docstring).
    """

    def __init__(self, path: Path, *, max_messages: int, sync: str = "normal") -> None:
        if max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, got {max_messages}")
        if sync not in ("normal", "full"):
            raise ValueError(f"sync must be 'normal' or 'full', got {sync!r}")
        self.path = path
        self.max_messages = max_messages
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._count = 0
        self._appends = 0
        self._unsaved = 0  # messages that could not be stored, not yet added to the counter on disk
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = self._open(path, sync)
            except sqlite3.DatabaseError as exc:
                self._db = self._open(self._set_aside(path, exc), sync)
            self._count = self._scalar("SELECT COUNT(*) FROM outbox")
            self._unsaved = 0
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"outbox {path}: cannot open: {exc}") from None

    @staticmethod
    def _open(path: Path, sync: str) -> sqlite3.Connection:
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=5.0)
        try:
            _check_ours(db)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={sync.upper()}")
            db.executescript(SCHEMA)
        except sqlite3.Error:
            db.close()
            raise
        return db

    @staticmethod
    def _set_aside(path: Path, exc: sqlite3.Error) -> Path:
        """Move a damaged file out of the way: a daemon that cannot start loses more than this file."""
        if isinstance(exc, sqlite3.OperationalError):
            raise exc  # locked or unreadable, not damaged: do not touch it
        kind = "foreign" if isinstance(exc, ForeignFileError) else "damaged"
        aside = path.with_name(f"{path.name}.{kind}-{int(time.time())}")
        path.replace(aside)
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                side.replace(aside.with_name(aside.name + suffix))
        what = "not an outbox" if kind == "foreign" else "damaged"
        logger.error("outbox %s is %s (%s): moved it to %s and started an empty one", path, what, exc, aside)
        return path

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise OutboxError(f"outbox {self.path}: already closed")
        return self._db

    def _scalar(self, sql: str, args: tuple[object, ...] = ()) -> int:
        row = self._conn().execute(sql, args).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def __len__(self) -> int:
        return max(0, self._count)

    @property
    def dropped(self) -> int:
        """Messages dropped (bound hit, or not storable at all) over the life of the file."""
        return self._counter("dropped") + self._unsaved

    @property
    def refused(self) -> int:
        """Entries set aside because the broker (or the client library) would not take them."""
        return self._counter("refused")

    def _counter(self, name: str) -> int:
        with self._lock:
            try:
                return self._scalar("SELECT value FROM counters WHERE name = ?", (name,))
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: cannot read the counters: {exc}") from None

    def append(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int:
        """Store one message durably; drop the oldest first if the outbox is full.

        Returns:
            The new entry's sequence number.

        Raises:
            OutboxError: The disk write failed (full disk, read-only file system).
        """
        return self.append_many(topic, (payload,), qos=qos, retain=retain)[-1]

    def append_many(self, topic: str, payloads: Sequence[bytes], *, qos: int = 1, retain: bool = False) -> list[int]:
        """Store several messages in one transaction: all of them are on disk when it returns, or none.

        One commit for a frame's events instead of one per event (a commit is the costly part).

        Returns:
            The new entries' sequence numbers, in order (only the newest ``max_messages`` of a
            batch larger than the bound are kept; the others count as dropped).

        Raises:
            OutboxError: The disk write failed (full disk, read-only file system); nothing was stored.
        """
        if not payloads:
            return []
        with self._lock:
            db = self._conn()
            try:
                return self._append(db, topic, payloads, qos, retain)
            except sqlite3.Error as exc:
                _rollback(db)
                # Not stored means lost unless counted: the count lives in memory until a write succeeds.
                self._unsaved += len(payloads)
                raise OutboxError(f"outbox {self.path}: cannot store a message: {exc}") from None

    def _append(
        self, db: sqlite3.Connection, topic: str, payloads: Sequence[bytes], qos: int, retain: bool
    ) -> list[int]:
        db.execute("BEGIN IMMEDIATE")
        before, self._appends = self._appends, self._appends + len(payloads)
        count = self._count
        if self._appends // RECOUNT_EVERY != before // RECOUNT_EVERY:
            # Another process on the same file (which should not happen) shifts the cached count.
            count = self._scalar("SELECT COUNT(*) FROM outbox")
        # A batch larger than the bound keeps its newest entries, like appending them one by one would.
        kept = payloads[-self.max_messages:]
        excess, deleted = count + len(kept) - self.max_messages, 0
        if excess > 0:
            deleted = max(0, db.execute("DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq "
                                        "LIMIT ?)", (excess,)).rowcount)
        dropped = deleted + len(payloads) - len(kept)
        if dropped > 0 or self._unsaved:
            db.execute(BUMP, ("dropped", dropped + self._unsaved))
        now, flag = time.time(), int(retain)
        db.executemany("INSERT INTO outbox(topic, payload, qos, retain, created) VALUES (?, ?, ?, ?, ?)",
                       [(topic, payload, qos, flag, now) for payload in kept])
        last = self._scalar("SELECT last_insert_rowid()")
        db.execute("COMMIT")
        self._unsaved = 0
        if dropped > 0:
            logger.warning("outbox full (%d messages): dropped the %d oldest", self.max_messages, dropped)
        self._count = max(0, count - deleted) + len(kept)
        # The write lock is held from BEGIN IMMEDIATE to COMMIT, so the batch's seqs are consecutive.
        return list(range(last - len(kept) + 1, last + 1))

    def set_aside(self, seq: int, reason: str) -> None:
        """Move entry ``seq`` to the ``refused`` table and count it (a missing one is ignored)."""
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                moved = db.execute(
                    "INSERT INTO refused(seq, topic, payload, reason, created) "
                    "SELECT seq, topic, payload, ?, created FROM outbox WHERE seq = ?", (reason[:500], seq)).rowcount
                db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
                if moved > 0:
                    db.execute(BUMP, ("refused", moved))
                db.execute("DELETE FROM refused WHERE seq <= (SELECT seq FROM refused ORDER BY seq DESC "
                           "LIMIT 1 OFFSET ?)", (KEEP_REFUSED,))
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(db)
                raise OutboxError(f"outbox {self.path}: cannot set a message aside: {exc}") from None
            self._count -= max(0, moved)

    def remove(self, seq: int) -> bool:
        """Forget an acknowledged entry; returns False if it was not there (e.g. already dropped)."""
        return self.remove_many((seq,)) > 0

    def remove_many(self, seqs: Iterable[int]) -> int:
        """Forget acknowledged entries in one transaction; returns how many were there."""
        rows = [(seq,) for seq in seqs]
        if not rows:
            return 0
        with self._lock:
            db = self._conn()
            try:
                if len(rows) == 1:
                    deleted = db.execute("DELETE FROM outbox WHERE seq = ?", rows[0]).rowcount
                else:
                    db.execute("BEGIN IMMEDIATE")
                    deleted = db.executemany("DELETE FROM outbox WHERE seq = ?", rows).rowcount
                    db.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(db)
                raise OutboxError(f"outbox {self.path}: cannot remove a message: {exc}") from None
            # Another process may have appended what this one removes: never count below zero.
            self._count = max(0, self._count - max(0, deleted))
            return max(0, deleted)

    def pending(self, *, after: int = 0, limit: int | None = None) -> list[OutboxEntry]:
        """Waiting entries with ``seq > after``, oldest first, at most ``limit`` of them."""
        with self._lock:
            try:
                rows = self._conn().execute(
                    "SELECT seq, topic, payload, qos, retain FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after, -1 if limit is None else limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: cannot read waiting messages: {exc}") from None
        return [OutboxEntry(int(s), str(t), bytes(p), int(q), bool(r)) for s, t, p, q, r in rows]

    def close(self) -> None:
        """Checkpoint and close the file; idempotent."""
        with self._lock:
            if self._db is None:
                return
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                logger.warning("outbox %s: checkpoint failed: %s", self.path, exc)
            try:
                self._db.close()
            except sqlite3.Error as exc:
                logger.warning("outbox %s: close failed: %s", self.path, exc)
            self._db = None
            if self._unsaved:
                logger.error("outbox %s: %d messages could not be stored and are lost (counted as dropped "
                             "until now; the count could not be written)", self.path, self._unsaved)

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
