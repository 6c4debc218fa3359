"""The live status page: token rules over real HTTP, and the page itself in headless Chromium.

The browser test runs `faceagent run` on an image folder (blank frames first, then photos held long
enough to become faces) with the page on a loopback port and a token, opens it in Debian's
``chromium --headless`` (installed by scripts/test.sh), reads the DOM the page's script built and
takes a screenshot.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from broker import free_port, wait_until
from daemon_support import DaemonProcess, SceneWriter, count_faces
from PIL import Image

from rpi_agent.config import StatusConfig
from rpi_agent.config.status import is_loopback
from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.domain import FaceEvent, Frame, FrameResult, TrackedFace
from rpi_agent.errors import ConfigError
from rpi_agent.imaging.files import load_rgb
from rpi_agent.status import StatusBoard, StatusServer

TOKEN = "s3cret-token with spaces;and=signs"
SCREENSHOT = Path(os.environ.get("FACEAGENT_STATUS_SCREENSHOT", "/tmp/faceagent-status.png"))
BLANKS = 80  # 8 s of empty frames at 10 fps before the first face: the page is seen without events first
timings: dict[str, float] = {}


def fetch(url: str, *, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def tracked(face_id: str, box: tuple[float, float, float, float]) -> TrackedFace:
    return TrackedFace(id=face_id, camera="door", box=box, score=0.91, top_score=0.91, area=1.0, start_time=1.0)


def one_result(index: int, rgb: np.ndarray) -> FrameResult:
    face = tracked("f1", (100.0, 80.0, 180.0, 180.0))
    frame = Frame(camera="door", index=index, timestamp=1.0e9, rgb=rgb, width=rgb.shape[1], height=rgb.shape[0])
    return FrameResult(frame, (face,), (FaceEvent("new", face, face),), {"detect": 10.0})


def test_loopback_rules():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.20", "::", "pi.lan"))
    with pytest.raises(ConfigError, match="needs a token"):
        StatusServer(StatusConfig(enabled=True, host="0.0.0.0", port=0, token_env="FACEAGENT_TEST_UNSET",
                                  token_credential=""), StatusBoard(["door"]))
    taken = StatusServer(StatusConfig(enabled=True, port=0), StatusBoard(["door"]))
    try:
        with pytest.raises(ConfigError, match=f"status.port: cannot listen on 127.0.0.1:{taken.port}"):
            StatusServer(StatusConfig(enabled=True, port=taken.port), StatusBoard(["door"]))
    finally:
        taken.close()


def test_token_is_required_and_a_wrong_one_gets_401():
    board = StatusBoard(["door"])
    board.frame(one_result(7, np.full((240, 320, 3), 90, np.uint8)), ms={"detect": 10.0})
    server = StatusServer(StatusConfig(enabled=True, port=0, token=TOKEN), board)
    server.start()
    try:
        base = server.url
        for path in ("", "api/status", "frame/door.jpg", "event/1.jpg"):
            assert fetch(base + path)[0] == 401, path
            status, headers, _ = fetch(base + path, headers={"Authorization": "Bearer wrong"})
            assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), path
            assert fetch(base + path + "?token=wrong")[0] == 401, path
        assert fetch(base + "page.js")[0] == 200 and fetch(base + "page.css")[0] == 200  # no data in them
        status, _, body = fetch(base + "api/status", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and json.loads(body)["cameras"]["door"]["frame"] == 7
        status, headers, body = fetch(base + "?token=" + urllib.request.quote(TOKEN, safe=""))
        assert status == 200 and b"<title>faceagent status</title>" in body
        cookie = headers["Set-Cookie"].split(";")[0]
        assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
        status, headers, jpeg = fetch(base + "frame/door.jpg", headers={"Cookie": cookie})
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        assert Image.open(io.BytesIO(jpeg)).size == (320, 240)
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        status, _, thumb = fetch(base + "event/1.jpg", headers={"Cookie": cookie})
        assert status == 200 and Image.open(io.BytesIO(thumb)).size[0] > 50
        assert fetch(base + "frame/gate.jpg", headers={"Cookie": cookie})[0] == 404
    finally:
        server.close()


def test_frames_are_encoded_on_request_once():
    encoded: list[int] = []

    def encoder(rgb: np.ndarray, quality: int) -> bytes:
        encoded.append(rgb.shape[0])
        return b"\xff\xd8fake"

    board = StatusBoard(["door"], encoder=encoder)
    rgb = np.zeros((240, 320, 3), np.uint8)
    for index in range(50):
        board.frame(one_result(index, rgb), ms={"detect": 1.0})
    assert encoded == []  # nobody asked: nothing encoded
    assert board.frame_jpeg("door") == board.frame_jpeg("door") == b"\xff\xd8fake"
    assert encoded == [240]  # two viewers, one encoding of the latest frame
    view = board.view()
    assert len(view["events"]) == 12 and view["events"][0]["serial"] == 50  # newest first, capped


def test_the_frame_shows_landmarks_when_the_model_has_them():
    from rpi_agent.domain import TrackedFace
    from rpi_agent.status.board import draw

    rgb = np.full((240, 320, 3), 90, np.uint8)
    points = ((130.0, 100.0), (190.0, 100.0), (160.0, 130.0), (138.0, 160.0), (182.0, 160.0))
    plain = TrackedFace("a", "door", (100.0, 60.0, 220.0, 200.0), 0.9, 0.9, 120.0 * 140.0)
    marked = TrackedFace("a", "door", plain.box, 0.9, 0.9, plain.area, landmarks=points)
    without, with_points = draw(rgb, [plain]), draw(rgb, [marked])
    for x, y in points:
        assert (without[int(y), int(x)] == 90).all() and not (with_points[int(y), int(x)] == 90).all()


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: scripts/test.sh installs it (apt-get install -y chromium)")
    return path


def browse(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on ``url``; the page's script gets 4 s of (virtual) time to fetch and draw."""
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,900",
               "--virtual-time-budget=4000", *extra, url]
    began = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    timings["chromium_s"] = timings.get("chromium_s", 0.0) + time.monotonic() - began
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def events_in(dom: str) -> list[str]:
    return re.findall(r'<li data-serial="\d+">.*?</li>', dom, flags=re.S)


@pytest.fixture(scope="module")
def scene(tmp_path_factory, faces_dir: Path, built_model) -> tuple[Path, list[int]]:
    """Blanks, then three photos with faces for 25 frames each, the last held: ``(folder, faces per photo)``."""
    detector = FaceDetector.from_model(built_model("RFB-320"))
    photos = sorted(faces_dir.glob("*.jpg"), key=lambda p: int(p.stem))
    chosen = [(p, n) for p in photos if 1 <= (n := count_faces(detector, load_rgb(p))) <= 6][:3]
    writer = SceneWriter(tmp_path_factory.mktemp("status-scene") / "frames")
    writer.blanks(BLANKS)
    for photo, _ in chosen[:-1]:
        writer.link(photo, 25)
        writer.blanks(5)
    writer.link(chosen[-1][0], 3000)
    return writer.folder, [n for _, n in chosen]


def write_config(path: Path, *, folder: Path, port: int, model: Path, state: Path) -> Path:
    path.write_text(f"""
[detector]
model = "{model}"
[mqtt]
enabled = false
[[cameras]]
name = "door"
source = "{folder}"
fps = 10
hold_frames = 1
[cameras.tracker]
min_hits = 2
max_age_frames = 3
max_age_seconds = 0
[cameras.gpio]
relay_pin = 17
relay_seconds = 1.0
dwell_seconds = 0
cooldown_seconds = 0
[paths]
state_dir = "{state}"
[status]
enabled = true
port = {port}
token_env = "FACEAGENT_TEST_STATUS_TOKEN"
token_credential = ""
refresh_seconds = 0.5
""")
    return path


def check_filled_page(dom: str, base: str, auth: dict[str, str], new: int) -> None:
    """Events listed with decoded thumbnails, the frame decoded at the camera's size, facts filled in."""
    rows = events_in(dom)
    assert len(rows) >= min(new, 12), dom[-4000:]
    thumbs = re.findall(r'<img alt="face [^"]+" src="event/\d+\.jpg" data-loaded="(\d+)x(\d+)"', dom)
    assert thumbs and all(int(w) > 10 and int(h) > 10 for w, h in thumbs), rows[:3]
    assert re.search(r'class="type-new">new</b>', dom)

    # The frame decoded in the browser at the camera's size, and the facts are filled in.
    shot = re.search(r'<img class="shot" alt="latest frame" src="frame/door\.jpg\?n=\d+" data-loaded="(\d+)x(\d+)"',
                     dom)
    status, _, jpeg = fetch(base + "frame/door.jpg", headers=auth)
    assert shot and status == 200, dom[-4000:]
    assert Image.open(io.BytesIO(jpeg)).size == (int(shot.group(1)), int(shot.group(2)))
    assert re.search(r'<dd class="source ONLINE">ONLINE</dd>', dom), dom[-4000:]
    assert re.search(r'<dd class="relay (LOCKED|UNLOCKED)">(LOCKED|UNLOCKED)</dd>', dom)
    assert re.search(r'<tr><td>total</td><td>\d+\.\d</td></tr>', dom), dom[-4000:]
    assert re.search(r'<dd class="fps">[1-9]\d*\.\d</dd>', dom), dom[-4000:]


def test_status_page_in_chromium(tmp_path, scene, built_model, monkeypatch):
    folder, faces = scene
    port = free_port()
    config = write_config(tmp_path / "config.toml", folder=folder, port=port, model=built_model("RFB-320"),
                          state=tmp_path / "state")
    monkeypatch.setenv("FACEAGENT_TEST_STATUS_TOKEN", TOKEN)
    base = f"http://127.0.0.1:{port}/"
    page = base + "?token=" + urllib.request.quote(TOKEN, safe="")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    began = time.monotonic()
    daemon = DaemonProcess(config)
    try:
        assert daemon.wait_log(lambda d: any("status page on" in line for line in d.lines), 60), daemon.log()
        assert fetch(base + "api/status", headers=auth)[0] == 200

        # Before any face: the page shows the camera and says there is no event yet.
        early = html.unescape(browse(page, tmp_path / "profile", "--dump-dom").stdout)
        if not json.loads(fetch(base + "api/status", headers=auth)[2])["events"]:
            assert not events_in(early) and re.search(r'<p id="no-events">No event yet', early), early[-3000:]
        assert 'data-camera="door"' in early

        # Faces appear: the list fills, with thumbnails that decode.
        new = len(faces)
        assert daemon.wait_log(lambda d: sum(t == "new" for _, t in d.logged_events()) >= new, 120), daemon.log()
        dom = html.unescape(browse(page, tmp_path / "profile", "--dump-dom").stdout)
        check_filled_page(dom, base, auth, new)

        # A screenshot of the page as a person sees it.
        browse(page, tmp_path / "profile", f"--screenshot={SCREENSHOT}")
        picture = np.asarray(Image.open(SCREENSHOT).convert("RGB"))
        assert picture.shape == (900, 1280, 3) and picture.std() > 20

        # A wrong token: the browser gets 401 and no data.
        wrong = html.unescape(browse(base + "?token=nope", tmp_path / "other", "--dump-dom").stdout)
        assert "401: a valid token is needed" in wrong and "faceagent status" not in wrong
        assert daemon.stop(signal.SIGTERM) == 0, daemon.log()
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert "Traceback" not in daemon.log()
    timings["scenario_s"] = time.monotonic() - began
    print(f"\nstatus page test timings (s): { {k: round(v, 1) for k, v in timings.items()} }; screenshot {SCREENSHOT}")


def test_page_refuses_to_start_beyond_loopback_without_token(tmp_path, scene, built_model):
    folder, _ = scene
    config = write_config(tmp_path / "config.toml", folder=folder, port=free_port(), model=built_model("RFB-320"),
                          state=tmp_path / "state")
    config.write_text(config.read_text().replace("enabled = true\nport", 'enabled = true\nhost = "0.0.0.0"\nport'))
    daemon = DaemonProcess(config)
    code = daemon.stop(signal.SIGTERM, timeout=60) if not wait_until(lambda: daemon.proc.poll() is not None, 60) \
        else daemon.proc.wait()
    daemon._reader.join(10)
    errors = [line for line in daemon.lines if "status.host" in line]
    assert code == 78 and len(errors) == 1, daemon.log()
    assert "needs a token" in errors[0] and "Traceback" not in daemon.log()
