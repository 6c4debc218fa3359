"""`faceagent run --source k210:PORT`: what main.py sends over its UART becomes MQTT face events.

The chain: the V4 kmodel's outputs from nncase v0.2's runtime (``ncc infer``) → k210/main.py
under MicroPython (stand-ins for the MaixPy modules) → its UART lines → a pseudo-terminal → the
daemon's K210 source → tracker → a real Mosquitto.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import tty
import uuid
from pathlib import Path

import pytest
from broker_fixtures import WAIT
from daemon_support import CAMERA, MIN_SCORE, DaemonProcess, lifecycles, received_events, write_config
from k210_support import LANDMARK_KMODELS, iou, run_board, sd_card

MIN_HITS = 2
MAX_AGE = 2


def _pick_frame(lines: list[bytes]) -> tuple[bytes, list[list[float]]]:
    """A frame with a few well-separated confident faces: unambiguous to track.

    Returns:
        The line and its confident faces, each ``[x1, y1, x2, y2, score]`` plus, from a landmark
        model, its five points.
    """
    for line in lines:
        msg = json.loads(line)
        points = msg.get("landmarks", [None] * len(msg["faces"]))
        faces = [f + ([p] if p else []) for f, p in zip(msg["faces"], points, strict=True) if f[4] >= MIN_SCORE]
        apart = all(iou(tuple(a[:4]), tuple(b[:4])) == 0.0 for a in faces for b in faces if a is not b)
        if 1 <= len(faces) <= 4 and apart:
            return line, faces
    pytest.fail("no frame with 1 to 4 separated confident faces in the board's output")


class Board(threading.Thread):
    """Writes board lines into a pty master: blank frames until told, then a scene, then blanks."""

    def __init__(self, master: int, scene: list[bytes]) -> None:
        super().__init__(daemon=True)
        self.master = master
        self.scene = scene
        self.go = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        blank = b'{"t": 0, "faces": []}\n'
        while not self.go.is_set() and not self.stop.wait(0.05):
            os.write(self.master, blank)
        for line in self.scene:
            os.write(self.master, line + b"\n")
            self.stop.wait(0.05)
        while not self.stop.wait(0.05):
            os.write(self.master, blank)


@pytest.mark.parametrize("name", ["slim-320", LANDMARK_KMODELS[0]])
def test_board_lines_become_tracked_mqtt_events(tmp_path: Path, broker, recorder, built_model, name: str) -> None:
    uart, _, _ = run_board(tmp_path / "board", sd=sd_card(name=name), name=name)
    line, faces = _pick_frame(uart)
    master, slave = os.openpty()
    tty.setraw(slave)
    link = tmp_path / "ttyK210"
    link.symlink_to(os.ttyname(slave))
    prefix = f"fa{uuid.uuid4().hex[:6]}"
    rec = recorder([f"{prefix}/#"])
    source = Path(f"k210:{link}?baud=115200")  # write_config puts it verbatim into the camera's source
    config = write_config(
        tmp_path / "config.toml", port=broker.port, prefix=prefix, folder=source,
        state_dir=tmp_path / "state", model=built_model("RFB-320"), fps=0, min_hits=MIN_HITS,
        max_age_frames=MAX_AGE, client_id=f"k210-{prefix}",
    )
    board = Board(master, [line] * (MIN_HITS + 1))
    board.start()
    daemon = DaemonProcess(config)
    try:
        assert daemon.wait_log(lambda d: any("connected at 115200 baud" in ln for ln in d.lines), 60), daemon.log()
        board.go.set()
        done = daemon.wait_log(lambda d: sum(t == "end" for _, t in d.logged_events()) >= len(faces), 60)
        assert done, daemon.log()
        assert rec.wait_for(lambda: len(rec.payloads(f"{prefix}/events")) >= 2 * len(faces), WAIT)
        # The board's link state reaches MQTT like any camera's (it once had no state callback).
        state_topic = f"{prefix}/{CAMERA}/source/state"
        assert rec.wait_for(lambda: b"ONLINE" in rec.payloads(state_topic), WAIT), rec.payloads(state_topic)
        code = daemon.stop(signal.SIGTERM)
    finally:
        board.stop.set()
        if daemon.proc.poll() is None:
            daemon.proc.kill()
        board.join(WAIT)
        os.close(master)
        os.close(slave)
    assert code == 0, daemon.log()
    events = received_events(rec, prefix)
    per_id = lifecycles(events)
    assert len(per_id) == len(faces)
    assert all(types[0] == "new" and types[-1] == "end" for types in per_id.values()), per_id
    announced = [e["after"] for e in events if e["type"] == "new"]
    for face in faces:
        best = max(announced, key=lambda a: iou(tuple(a["box"]), tuple(face[:4])))
        assert iou(tuple(best["box"]), tuple(face[:4])) > 0.95
        assert best["score"] == pytest.approx(face[4], abs=1e-3)
        # A landmark model's five points reach MQTT as the board sent them (whole pixels).
        assert best.get("landmarks") == (face[5] if len(face) > 5 else None)
