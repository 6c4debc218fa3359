"""Helpers for the daemon tests: image-folder scenes, configs, the daemon subprocess, event checks.

The expected number of faces per scene is measured with the real detector on the same images and the
same thresholds the daemon is configured with, so nothing here is a hard-coded result.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.imaging.files import load_rgb

CAMERA = "door"
MIN_SCORE = 0.7
EVENT_LINE = re.compile(r"camera (\S+): face (\S+) (new|update|end) \(score")


@dataclass
class Scenes:
    """A folder of frames and what the detector finds in it."""

    folder: Path
    faces_per_scene: list[int] = field(default_factory=list)
    moving_frames: int = 0

    @property
    def expected_faces(self) -> int:
        return sum(self.faces_per_scene)


def count_faces(detector: FaceDetector, rgb: np.ndarray) -> int:
    return sum(1 for f in detector.detect(rgb).faces if f.score >= MIN_SCORE)


class SceneWriter:
    """Writes numbered frames (natural order) into a folder; blanks and repeats are symlinks."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.count = 0
        self.blank = folder.parent / f"{folder.name}-blank.png"
        Image.new("RGB", (640, 480)).save(self.blank)

    def link(self, target: Path, times: int) -> None:
        for _ in range(times):
            self.count += 1
            (self.folder / f"{self.count:05d}{target.suffix}").symlink_to(target)

    def blanks(self, times: int) -> None:
        self.link(self.blank, times)

    def image(self, rgb: np.ndarray) -> None:
        self.count += 1
        Image.fromarray(rgb).save(self.folder / f"{self.count:05d}.png")


def moving_face(photo: np.ndarray, steps: int) -> list[np.ndarray]:
    """The photo slid left to right across a canvas twice its width, in ``steps`` frames."""
    h, w = photo.shape[:2]
    frames = []
    for k in range(steps):
        canvas = np.zeros((h, 2 * w, 3), np.uint8)
        x = round(k * w / (steps - 1))
        canvas[:, x:x + w] = photo
        frames.append(canvas)
    return frames


def build_scenes(folder: Path, photos: list[Path], detector: FaceDetector, *, repeat: int, gap: int,
                 moving: Path | None = None, tail: int = 0) -> Scenes:
    """Each photo shown ``repeat`` times then ``gap`` blank frames; optionally one face walking into the
    right half; then ``tail`` blank frames.

    Raises:
        AssertionError: A blank frame has a face, or the walking face is not exactly one face throughout.
    """
    writer = SceneWriter(folder)
    scenes = Scenes(folder)
    assert count_faces(detector, load_rgb(writer.blank)) == 0, "the blank frame has a face"
    for photo in photos:
        scenes.faces_per_scene.append(count_faces(detector, load_rgb(photo)))
        writer.link(photo, repeat)
        writer.blanks(gap)
    if moving is not None:
        frames = moving_face(load_rgb(moving), 25)  # steps small enough for the IoU tracker to follow
        counts = [count_faces(detector, f) for f in frames]
        assert counts == [1] * len(frames), f"walking face not found once in every frame: {counts}"
        for frame in frames:
            writer.image(frame)
        writer.blanks(gap)
        scenes.faces_per_scene.append(1)
        scenes.moving_frames = len(frames)
    writer.blanks(tail)
    return scenes


def head(model: Path, *, port: int, prefix: str, client_id: str) -> str:
    """The ``[detector]`` and ``[mqtt]`` tables of a test daemon: a local broker, quick reconnects,
    no password, no Home Assistant discovery; ends inside ``[mqtt]`` so a caller may add keys."""
    return f"""[detector]
model = "{model}"
[mqtt.home_assistant]
enabled = false
[mqtt]
host = "127.0.0.1"
port = {port}
topic_prefix = "{prefix}"
client_id = "{client_id}"
reconnect_min = 0.2
reconnect_max = 1.0
password_env = "FACEAGENT_TEST_UNSET_PASSWORD"
password_credential = ''"""


def write_config(path: Path, *, port: int, prefix: str, folder: Path, state_dir: Path, model: Path, fps: float,
                 min_hits: int, max_age_frames: int, client_id: str) -> Path:
    path.write_text(f"""
{head(model, port=port, prefix=prefix, client_id=client_id)}
keepalive = 5
[[cameras]]
name = "{CAMERA}"
source = "{folder}"
fps = {fps}
hold_frames = 1
[cameras.zones.right]
points = [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]
[cameras.filters]
min_score = {MIN_SCORE}
[cameras.tracker]
min_hits = {min_hits}
max_age_frames = {max_age_frames}
max_age_seconds = 0
update_interval = 0
[cameras.gpio]
relay_pin = 17
relay_seconds = 0.3
dwell_seconds = 0
cooldown_seconds = 0
led_pin = 27
[paths]
state_dir = "{state_dir}"
[logging]
stats_interval = 1
""")
    return path


class DaemonProcess:
    """``faceagent run`` as a subprocess; its stderr is read on a thread (and kept) so it never blocks."""

    def __init__(self, config: Path, *extra: str) -> None:
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rpi_agent", "run", "--config", str(config), "--gpio-factory", "mock", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def logged_events(self) -> list[tuple[str, str]]:
        """``(id, type)`` of every event the daemon logged (it logs after the outbox has it)."""
        with self._cond:
            return [(m.group(2), m.group(3)) for line in self.lines if (m := EVENT_LINE.search(line))]

    def wait_log(self, predicate, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self) or self.proc.poll() is not None, timeout) and \
                predicate(self)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(10)
        return code

    def log(self) -> str:
        with self._cond:
            return "\n".join(self.lines[-60:])


def received_events(recorder, prefix: str) -> list[dict]:
    return [json.loads(p) for p in recorder.payloads(f"{prefix}/events")]


def lifecycles(events: list[dict], camera: str = CAMERA) -> dict[str, list[str]]:
    """Event types per face id, in arrival order, duplicates (QoS 1 redelivery) removed."""
    seen: set[tuple[str, str, str]] = set()
    per_id: dict[str, list[str]] = defaultdict(list)
    for event in events:
        after = event["after"]
        key = (after["id"], event["type"], json.dumps(event, sort_keys=True))
        if key in seen:
            continue
        seen.add(key)
        assert event["before"]["id"] == after["id"], event
        assert after["camera"] == camera and after["label"] == "face"
        per_id[after["id"]].append(event["type"])
    return dict(per_id)


def relay_states(recorder, prefix: str) -> list[str]:
    return [p.decode() for p in recorder.payloads(f"{prefix}/{CAMERA}/relay/state")]


def assert_fail_secure(states: list[str]) -> None:
    """Relay reports start LOCKED, alternate, and end LOCKED (retained re-sends may repeat a state)."""
    assert states, "no relay state published"
    assert states[0] == "LOCKED" and states[-1] == "LOCKED", states
    assert set(states) <= {"LOCKED", "UNLOCKED"}, states


def looping_face_config(tmp_path: Path, broker, photo: Path, model: Path, prefix: str) -> Path:
    """A daemon config that keeps the relay UNLOCKED and a face open until it is stopped: one photo
    with one face played in a loop, a 600 s unlock pulse on the first detection."""
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "1.jpg").symlink_to(photo)
    path = tmp_path / "config.toml"
    path.write_text(f"""
{head(model, port=broker.port, prefix=prefix, client_id=f"sig-{prefix}")}
[[cameras]]
name = "{CAMERA}"
source = "{folder}"
fps = 10
loop = true
[cameras.tracker]
min_hits = 1
max_age_seconds = 0
[cameras.gpio]
relay_pin = 17
relay_seconds = 600
dwell_seconds = 0
[paths]
state_dir = "{tmp_path / "state"}"
[logging]
stats_interval = 0
""")
    return path
