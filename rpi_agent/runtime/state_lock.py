"""One daemon per state directory: an exclusive ``flock`` held for the life of the process.

Two daemons on one state directory would share the MQTT outbox, take each other's broker session
(same client id) and drive the same pins. The lock file holds the holder's pid so the second one
can say whom it met; the kernel drops the lock when the holder dies, however it dies, so a stale
file never blocks a restart.

Example:
    >>> with StateLock(Path("/var/lib/faceagent")):  # doctest: +SKIP
    ...     Daemon(config).run()
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from rpi_agent.errors import ConfigError

LOCK_NAME = "faceagent.lock"


class StateLock:
    """Exclusive lock on ``<state_dir>/faceagent.lock``; a context manager.

    Raises (on entry):
        ConfigError: The directory cannot be created or written, or another process holds the lock
            (the message names its pid). ``run`` exits 78 on it, which systemd does not restart.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"paths.state_dir: cannot create {self.state_dir}: {exc.strerror or exc}") from None
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ConfigError(f"paths.state_dir: cannot write {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise ConfigError(
                f"paths.state_dir: {self.state_dir} is in use by another faceagent ({holder}); stop it, "
                "or give this one its own paths.state_dir") from None
        except OSError as exc:
            os.close(fd)
            raise ConfigError(f"paths.state_dir: cannot lock {self.path}: {exc.strerror or exc}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        # The file stays: removing it would let a third process lock a new inode while a second
        # still waits on the old one.
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "pid unknown"
