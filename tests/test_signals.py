"""Every terminating signal stops the daemon in order: relay LOCKED (retained), open faces ended, `stopped`.

The daemon runs as `faceagent run` against a real Mosquitto, on one face photo played in a loop with a
long unlock pulse, so at the moment of the signal the relay is UNLOCKED and a face is open.
"""

from __future__ import annotations

import signal
import uuid

import pytest
from broker_fixtures import WAIT
from daemon_support import CAMERA, DaemonProcess, lifecycles, looping_face_config, received_events

from rpi_agent.runtime.signals import REQUESTED_STOP, exit_status, stop_signals


def _retained(recorder, topic: str) -> bytes:
    """What a subscriber arriving now is told: the retained message of ``topic``."""
    late = recorder([topic])
    assert late.wait_for(lambda: bool(late.on(topic)), WAIT), f"nothing retained on {topic}"
    return late.payloads(topic)[-1]


@pytest.fixture
def looping(tmp_path, broker, faces_dir, built_model) -> tuple[object, str]:
    """The config of a daemon holding the relay open on a face, and its topic prefix."""
    prefix = f"sg{uuid.uuid4().hex[:6]}"
    return looping_face_config(tmp_path, broker, faces_dir / "5.jpg", built_model("RFB-320"), prefix), prefix


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1],
                         ids=lambda s: s.name)
def test_signal_stops_fail_secure(sig, looping, recorder):
    config, prefix = looping
    rec = recorder([f"{prefix}/#"])
    relay = f"{prefix}/{CAMERA}/relay/state"
    daemon = DaemonProcess(config)
    try:
        unlocked = rec.wait_for(lambda: b"UNLOCKED" in rec.payloads(relay), 120)
        assert unlocked, f"the relay never opened:\n{daemon.log()}"
        assert rec.wait_for(lambda: len(received_events(rec, prefix)) >= 1, WAIT)
        code = daemon.stop(sig)
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    log = daemon.log()
    assert code == (0 if sig in REQUESTED_STOP else 128 + sig), log
    assert f"{sig.name} received: stopping" in log and "Traceback" not in log
    assert rec.wait_for(lambda: rec.payloads(f"{prefix}/available")[-1:] == [b"stopped"], WAIT), log
    assert rec.payloads(relay)[-1] == b"LOCKED"
    assert _retained(recorder, relay) == b"LOCKED"
    assert _retained(recorder, f"{prefix}/available") == b"stopped"
    per_id = lifecycles(received_events(rec, prefix))
    assert per_id and all(types[0] == "new" and types[-1] == "end" for types in per_id.values()), per_id


def test_every_catchable_terminating_signal_is_routed():
    handled = set(stop_signals())
    # Default action "terminate" or "core", catchable, not a fault of the process itself.
    expected = {signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM,
                signal.SIGTERM, signal.SIGVTALRM, signal.SIGPROF, signal.SIGIO, signal.SIGPWR, signal.SIGXCPU}
    expected |= set(range(signal.SIGRTMIN, signal.SIGRTMAX + 1))
    assert expected <= handled
    left_out = {signal.SIGKILL, signal.SIGSTOP, signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE,
                signal.SIGABRT, signal.SIGTRAP, signal.SIGSYS, signal.SIGPIPE, signal.SIGXFSZ}
    assert not left_out & handled
    assert exit_status(None) == 0 and exit_status(signal.SIGTERM) == 0 and exit_status(signal.SIGINT) == 0
    assert exit_status(signal.SIGHUP) == 129 and exit_status(signal.SIGUSR2) == 140


def test_a_handler_installed_by_someone_else_is_kept():
    def mine(_signum, _frame):
        return None

    old = signal.signal(signal.SIGUSR2, mine)
    try:
        assert signal.SIGUSR2 not in stop_signals()
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert signal.SIGUSR2 in stop_signals()
