"""A bounded, crash-safe, on-disk queue of messages waiting for the broker's acknowledgement.

Every event is appended here *before* it is handed to the MQTT client and removed only when the
broker acknowledges it, so neither a broker outage nor a killed daemon loses it: what is left is
sent again, oldest first, on the next connection or start. When ``max_messages`` is reached the
oldest entries are dropped and counted (the count survives restarts).

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
"""


class OutboxError(FaceAgentError, OSError):
    """The outbox file cannot be opened or written."""


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
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = self._open(path, sync)
            except sqlite3.DatabaseError as exc:
                self._db = self._open(self._set_aside(path, exc), sync)
            self._count = self._scalar("SELECT COUNT(*) FROM outbox")
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"outbox {path}: cannot open: {exc}") from None

    @staticmethod
    def _open(path: Path, sync: str) -> sqlite3.Connection:
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=5.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={sync.upper()}")
            db.executescript(SCHEMA)
            db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        except sqlite3.Error:
            db.close()
            raise
        return db

    @staticmethod
    def _set_aside(path: Path, exc: sqlite3.Error) -> Path:
        """Move a damaged file out of the way: a daemon that cannot start loses more than this file."""
        if isinstance(exc, sqlite3.OperationalError):
            raise exc  # locked or unreadable, not damaged: do not touch it
        aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
        path.replace(aside)
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                side.replace(aside.with_name(aside.name + suffix))
        logger.error("outbox %s is damaged (%s): moved it to %s and started an empty one", path, exc, aside)
        return path

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise OutboxError(f"outbox {self.path}: already closed")
        return self._db

    def _scalar(self, sql: str, args: tuple[object, ...] = ()) -> int:
        row = self._conn().execute(sql, args).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def __len__(self) -> int:
        return self._count

    @property
    def dropped(self) -> int:
        """Entries dropped because the bound was hit, over the life of the file."""
        with self._lock:
            return self._scalar("SELECT value FROM counters WHERE name = 'dropped'")

    def append(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int:
        """Store one message durably; drop the oldest first if the outbox is full.

        Returns:
            The new entry's sequence number.

        Raises:
            OutboxError: The disk write failed (full disk, read-only file system).
        """
        with self._lock:
            try:
                return self._append(topic, payload, qos, retain)
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: cannot store a message: {exc}") from None

    def _append(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        db = self._conn()
        excess = self._count + 1 - self.max_messages
        db.execute("BEGIN IMMEDIATE")
        try:
            if excess > 0:
                db.execute("DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)", (excess,))
                db.execute(
                    "INSERT INTO counters(name, value) VALUES('dropped', ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                    (excess,),
                )
            cursor = db.execute(
                "INSERT INTO outbox(topic, payload, qos, retain, created) VALUES (?, ?, ?, ?, ?)",
                (topic, payload, qos, int(retain), time.time()),
            )
            db.execute("COMMIT")
        except sqlite3.Error:
            db.execute("ROLLBACK")
            raise
        if excess > 0:
            logger.warning("outbox full (%d messages): dropped the %d oldest", self.max_messages, excess)
            self._count -= excess
        self._count += 1
        return int(cursor.lastrowid or 0)

    def remove(self, seq: int) -> None:
        """Forget an acknowledged entry (a missing one, e.g. already dropped, is ignored)."""
        with self._lock:
            try:
                deleted = self._conn().execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: cannot remove a message: {exc}") from None
            self._count -= max(0, deleted)

    def pending(self, *, after: int = 0, limit: int | None = None) -> list[OutboxEntry]:
        """Waiting entries with ``seq > after``, oldest first, at most ``limit`` of them."""
        with self._lock:
            rows = self._conn().execute(
                "SELECT seq, topic, payload, qos, retain FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, -1 if limit is None else limit),
            ).fetchall()
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
            self._db.close()
            self._db = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
