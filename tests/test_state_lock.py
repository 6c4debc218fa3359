"""One daemon per state directory: a second `faceagent run` on it exits 78 naming the first, which runs on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import pytest
from broker_fixtures import WAIT
from daemon_support import CAMERA, DaemonProcess, looping_face_config

from rpi_agent.cli import EX_CONFIG
from rpi_agent.errors import ConfigError
from rpi_agent.runtime.state_lock import LOCK_NAME, StateLock


def test_second_instance_is_refused_and_the_first_runs_on(tmp_path, broker, recorder, faces_dir, built_model):
    prefix = f"lk{uuid.uuid4().hex[:6]}"
    config = looping_face_config(tmp_path, broker, faces_dir / "5.jpg", built_model("RFB-320"), prefix)
    rec = recorder([f"{prefix}/#"])
    first = DaemonProcess(config)
    try:
        assert rec.wait_for(lambda: b"online" in rec.payloads(f"{prefix}/available"), 120), first.log()
        second = subprocess.run([sys.executable, "-m", "rpi_agent", "run", "--config", str(config),
                                 "--gpio-factory", "mock"], capture_output=True, text=True, timeout=120, check=False)
        assert second.returncode == EX_CONFIG, second.stderr
        lines = [ln for ln in second.stderr.splitlines() if ln.startswith("faceagent:")]
        assert lines == [f"faceagent: config error: paths.state_dir: {tmp_path / 'state'} is in use by another "
                         f"faceagent (pid {first.proc.pid}); stop it, or give this one its own paths.state_dir"]
        assert "Traceback" not in second.stderr
        assert first.proc.poll() is None, "the first daemon stopped"
        code = first.stop(signal.SIGTERM)
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
    assert code == 0, first.log()
    assert rec.wait_for(lambda: rec.payloads(f"{prefix}/available")[-1:] == [b"stopped"], WAIT)
    # The first daemon kept its one broker session: the second never connected and took it over.
    assert rec.payloads(f"{prefix}/available").count(b"online") == 1, rec.payloads(f"{prefix}/available")
    assert f"{CAMERA}: relay LOCKED" in first.log() or "LOCKED" in first.log()


def test_lock_is_released_on_exit_and_names_the_holder(tmp_path):
    state = tmp_path / "state"
    with StateLock(state):
        assert (state / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        # Another open file description: what a second process gets.
        with pytest.raises(ConfigError, match=rf"is in use by another faceagent \(pid {os.getpid()}\)"):
            StateLock(state).acquire()
    with StateLock(state):  # released, so taken again
        pass


def test_lock_on_an_unusable_state_dir_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"^paths.state_dir: cannot create .*: Not a directory$"):
        StateLock(blocker / "state").acquire()
