"""End to end: `faceagent run` on photos interleaved with blank frames, a real Mosquitto, mock GPIO pins."""

from __future__ import annotations

import signal
import uuid

import pytest
from broker_fixtures import WAIT
from daemon_support import (
    CAMERA,
    DaemonProcess,
    assert_fail_secure,
    build_scenes,
    lifecycles,
    received_events,
    relay_states,
    write_config,
)

from rpi_agent.detection.face_detector import FaceDetector

REPEAT = 2  # frames per photo = min_hits, so every face is announced on the photo's last frame
GAP = 2  # blank frames after each photo = max_age_frames, so every face ends before the next photo


@pytest.fixture(scope="module")
def detector(built_model) -> FaceDetector:
    return FaceDetector.from_model(built_model("RFB-320"))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory, faces_dir, detector):
    photos = sorted(faces_dir.glob("*.jpg"), key=lambda p: int(p.stem))
    folder = tmp_path_factory.mktemp("scenes") / "frames"
    # The long blank tail keeps the daemon running until the test sends SIGTERM.
    return build_scenes(folder, photos, detector, repeat=REPEAT, gap=GAP, moving=faces_dir / "5.jpg", tail=600)


def test_daemon_end_to_end(tmp_path, broker, recorder, scenes, built_model):
    prefix = f"fa{uuid.uuid4().hex[:6]}"
    rec = recorder([f"{prefix}/#"])
    config = write_config(
        tmp_path / "config.toml", port=broker.port, prefix=prefix, folder=scenes.folder, state_dir=tmp_path / "state",
        model=built_model("RFB-320"), fps=40, min_hits=REPEAT, max_age_frames=GAP, client_id=f"e2e-{prefix}",
    )
    daemon = DaemonProcess(config)
    expected = scenes.expected_faces
    try:
        ended = daemon.wait_log(lambda d: sum(t == "end" for _, t in d.logged_events()) >= expected, 300)
        assert ended, f"daemon did not finish the scenes:\n{daemon.log()}"
        assert rec.wait_for(lambda: sum(1 for _ in rec.on(f"{prefix}/events")) >= len(daemon.logged_events()), WAIT)
        code = daemon.stop(signal.SIGTERM)
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert code == 0, daemon.log()
    assert rec.wait_for(lambda: b"stopped" in rec.payloads(f"{prefix}/available"), WAIT)

    available = rec.payloads(f"{prefix}/available")
    assert available[0] == b"online" and available[-1] == b"stopped"

    per_id = lifecycles(received_events(rec, prefix))
    assert len(per_id) == expected, f"{len(per_id)} faces published, {expected} expected: {scenes.faces_per_scene}"
    for face_id, types in per_id.items():
        assert types[0] == "new" and types[-1] == "end", (face_id, types)
        assert types.count("new") == 1 and types.count("end") == 1, (face_id, types)
    assert sum(types.count("update") for types in per_id.values()) >= 1

    # The walking face entered the right-hand zone: an update carries it in entered_zones.
    events = received_events(rec, prefix)
    walked = [e for e in events if e["type"] == "update" and "right" in e["after"]["entered_zones"]
              and "right" not in e["before"]["entered_zones"]]
    assert walked, "no update for the face walking into the zone"

    # Logged and received are the same events, and nothing arrived that was not produced.
    logged = set(daemon.logged_events())
    got = {(e["after"]["id"], e["type"]) for e in events}
    assert logged == got

    counts = [int(p) for p in rec.payloads(f"{prefix}/{CAMERA}/faces")]
    assert max(counts) == max(scenes.faces_per_scene) and counts[-1] == 0
    snapshots = rec.payloads(f"{prefix}/{CAMERA}/face/snapshot")
    assert snapshots and snapshots[-1][:2] == b"\xff\xd8"

    states = relay_states(rec, prefix)
    assert_fail_secure(states)
    assert "UNLOCKED" in states, "the relay was never pulsed"
    detect = rec.payloads(f"{prefix}/{CAMERA}/detect/state")
    assert detect and detect[-1] == b"ON"
    assert "Traceback" not in daemon.log()
