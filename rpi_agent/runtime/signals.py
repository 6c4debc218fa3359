"""Which signals stop the daemon, and the exit status each one leaves.

Every signal whose default action would end the process, and that Python can handle, is routed
to the daemon's ordered, fail-secure shutdown instead (relay LOCKED, open faces ended,
``stopped`` published). What is left out, and why:

- ``SIGKILL``, ``SIGSTOP``: cannot be caught.
- ``SIGSEGV``, ``SIGBUS``, ``SIGILL``, ``SIGFPE``: faults of the process itself; no Python code can
  run safely after one (the kernel releases the GPIO lines, see docs/daemon.md).
- ``SIGABRT``: ``abort()`` and systemd's watchdog; the point is a core dump of a hung process,
  whose main loop could not run a handler anyway.
- ``SIGTRAP`` (debuggers), ``SIGSYS`` (the seccomp filter of the unit kills without a handler).
- ``SIGPIPE``, ``SIGXFSZ``: Python ignores them; the write fails with an error instead.

``SIGTERM`` and ``SIGINT`` are the ways to ask for a stop: exit status 0. Any other stops the
daemon the same way but exits with 128 + the signal number, as an unhandled signal would have, so
that systemd's ``Restart=on-failure`` starts it again: ``SIGHUP`` is therefore stop-and-restart
under systemd (the config is read again), and a plain stop in a terminal.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

REQUESTED_STOP = frozenset({signal.SIGTERM, signal.SIGINT})
"""Signals that mean "stop, all is well": exit status 0."""

_ALWAYS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
_IF_DEFAULT = ("SIGUSR1", "SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGIO", "SIGPWR", "SIGXCPU",
               "SIGSTKFLT")


def stop_signals() -> list[int]:
    """The signals routed to the shutdown on this platform, in number order.

    ``SIGTERM``, ``SIGINT``, ``SIGHUP`` and ``SIGQUIT`` always; the others (``SIGUSR1``, ``SIGUSR2``,
    timers, ``SIGPWR``, real-time signals, ...) only while nothing else in the process has installed
    a handler for them, so a library that uses one keeps it.
    """
    chosen = {int(s) for s in _ALWAYS}
    candidates = [int(getattr(signal, name)) for name in _IF_DEFAULT if hasattr(signal, name)]
    if hasattr(signal, "SIGRTMIN"):
        candidates += [int(s) for s in signal.valid_signals() if signal.SIGRTMIN <= s <= signal.SIGRTMAX]
    chosen.update(s for s in candidates if signal.getsignal(s) is signal.SIG_DFL)
    return sorted(chosen)


def exit_status(signum: int | None) -> int:
    """0 for no signal or a requested stop (``SIGTERM``, ``SIGINT``), else 128 + the signal number."""
    if signum is None or signum in REQUESTED_STOP:
        return 0
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    """``SIGHUP``; real-time signals as ``SIGRTMIN+3``."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIGRTMIN+{signum - signal.SIGRTMIN}" if hasattr(signal, "SIGRTMIN") else f"signal {signum}"


@contextmanager
def stop_handlers(on_signal: Callable[[int], None]) -> Iterator[list[int]]:
    """Route :func:`stop_signals` to ``on_signal(signum)`` inside the block; restore the old handlers after.

    Must run on the main thread (a rule of Python's ``signal`` module).
    """

    def handler(signum: int, _frame: FrameType | None) -> None:
        on_signal(signum)

    handled = stop_signals()
    previous = {s: signal.signal(s, handler) for s in handled}
    try:
        yield handled
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
