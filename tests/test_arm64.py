"""faceagent on the Pi's architecture: Debian Bookworm arm64 with Python 3.11, under qemu user emulation.

The arm64 root is built from Debian's packages by ``scripts/arm64/make_root.sh`` (cached in
``$FACEAGENT_CACHE_DIR/arm64-root``), faceagent is installed into it as on a Pi by
``scripts/arm64/install_in_root.sh`` (arm64 cp311 wheels from the package index), and every check below runs
the arm64 ``python3`` of that root. Building the root takes minutes, so these tests run only when asked for:
``pytest -m arm64`` or ``FACEAGENT_ARM64=1``. They need root (chroot, mounts, binfmt_misc).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from broker import Broker
from broker_fixtures import Recorder
from PIL import Image

from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.domain import Detection
from rpi_agent.evaluation.agreement import compare
from rpi_agent.imaging.files import load_rgb
from rpi_agent.paths import REPO_ROOT, cache_dir

pytestmark = pytest.mark.arm64

SCRIPTS = REPO_ROOT / "scripts" / "arm64"
GUEST_CACHE = "/var/lib/faceagent"
"""FACEAGENT_CACHE_DIR inside the root (set by in_root.sh): the service's state directory, as install.sh sets it up."""
MODEL = "RFB-320"
SCORE_MIN = 0.6
IOU_MIN = 0.5
F1_MIN = 0.98
DETECT_ARGS = ("detect", "--json", "--threshold", str(SCORE_MIN), "--model", MODEL, "/shared/data/faces")
F1_MIN_OTHER_KERNELS = 0.95


def _requested(config: pytest.Config) -> bool:
    markexpr = str(config.getoption("markexpr") or "")
    return os.environ.get("FACEAGENT_ARM64") == "1" or ("arm64" in markexpr and "not arm64" not in markexpr)


@dataclass(frozen=True)
class Arm64Root:
    """The prepared root and a way to run commands in it."""

    path: Path

    def run(
        self, *cmd: str, binds: Sequence[str] = (), timeout: float = 900, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        args = ["bash", str(SCRIPTS / "in_root.sh")]
        for bind in binds:
            args += ["--bind", bind]
        proc = subprocess.run([*args, "--", *cmd], capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited {proc.returncode} in the arm64 root:\n{proc.stderr[-3000:]}")
        return proc

    def popen(self, *cmd: str, binds: Sequence[str] = ()) -> subprocess.Popen[str]:
        """Start a command in the root. in_root.sh ends in a chain of execs, so the process signalled is the
        command itself (through qemu, which passes signals on to the emulated program)."""
        args = ["bash", str(SCRIPTS / "in_root.sh")]
        for bind in binds:
            args += ["--bind", bind]
        return subprocess.Popen([*args, "--", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _script(name: str, timeout: float) -> None:
    proc = subprocess.run(["bash", str(SCRIPTS / name)], capture_output=True, text=True, timeout=timeout, check=False)
    print(proc.stdout)
    if proc.returncode != 0:
        pytest.fail(f"scripts/arm64/{name} exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")


@pytest.fixture(scope="module")
def arm64(request: pytest.FixtureRequest, built_model: Callable[..., Path]) -> Arm64Root:
    """The cached arm64 root with faceagent and the built INT8 model installed by scripts/install.sh."""
    if not _requested(request.config):
        pytest.skip("arm64 emulation runs only on request: pytest -m arm64 (or FACEAGENT_ARM64=1)")
    if os.geteuid() != 0:
        pytest.fail("the arm64 tests need root (debootstrap, chroot, binfmt_misc): run them as root")
    built_model(MODEL, "int8")  # install_in_root.sh installs it the way install.sh does on a Pi
    _script("make_root.sh", timeout=3600)
    _script("install_in_root.sh", timeout=3600)
    root = Path(os.environ.get("FACEAGENT_ARM64_ROOT", cache_dir() / "arm64-root"))
    return Arm64Root(root)


def test_runtime_on_arm64_is_litert_with_xnnpack(arm64: Arm64Root) -> None:
    proc = arm64.run("python3", "/src/scripts/arm64/probe.py", f"{GUEST_CACHE}/models/{MODEL}/{MODEL}-int8.tflite")
    facts = json.loads(proc.stdout)
    print(json.dumps(facts, indent=1))
    assert facts["machine"] == "aarch64"
    assert facts["python"].startswith("3.11.")
    libc, version = facts["libc"].split()
    assert libc == "glibc"
    assert tuple(map(int, version.split("."))) >= (2, 34)
    for dist in ("faceagent", "numpy", "ai-edge-litert", "opencv-python-headless", "pillow", "paho-mqtt", "gpiozero"):
        assert facts["wheels"][dist], f"{dist} is not installed in the arm64 root"
    assert facts["runtime"] == "ai_edge_litert"
    assert facts["quantized"] is True
    assert facts["delegate_nodes"] == 1, "XNNPACK did not take over the INT8 graph"
    assert "XNNPACK delegate" in proc.stderr


def _detection(face: dict[str, Any]) -> Detection:
    box = [float(v) for v in face["box"]]
    return Detection((box[0], box[1], box[2], box[3]), float(face["score"]))


def _detections(lines: str) -> dict[str, list[Detection]]:
    """``faceagent detect --json`` output by image file name."""
    found: dict[str, list[Detection]] = {}
    for line in lines.splitlines():
        record = json.loads(line)
        found[Path(record["image"]).name] = [_detection(face) for face in record["faces"]]
    return found


def _match(found: list[Detection], reference: list[Detection]) -> tuple[int, int, int]:
    """Greedy one-to-one matching, best score first: (matched, extra, missed)."""
    agreement = compare(reference, found, min_score=SCORE_MIN, iou_threshold=IOU_MIN)
    return agreement.matched, agreement.candidate - agreement.matched, agreement.reference - agreement.matched


def _f1_against_x86(on_arm: dict[str, list[Detection]], faces_dir: Path, model: Path) -> float:
    host = subprocess.run(
        [
            str(REPO_ROOT / ".venv" / "bin" / "faceagent"),
            "detect",
            "--json",
            "--threshold",
            str(SCORE_MIN),
            "--model",
            str(model),
            str(faces_dir),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    on_x86 = _detections(host.stdout)
    assert sorted(on_arm) == sorted(on_x86)
    assert sum(len(v) for v in on_x86.values()) > 100, "too few faces on x86 for a meaningful comparison"
    matched = extra = missed = 0
    for name, reference in on_x86.items():
        m, e, x = _match(on_arm[name], reference)
        matched, extra, missed = matched + m, extra + e, missed + x
    f1 = 2 * matched / (2 * matched + extra + missed)
    print(f"arm64 vs x86: {matched} matched, {extra} extra, {missed} missed, F1 {f1:.4f}")
    return f1


def test_detect_on_arm64_matches_x86(arm64: Arm64Root, faces_dir: Path, built_model: Callable[..., Path]) -> None:
    guest = arm64.run(
        "faceagent",
        *DETECT_ARGS,
        timeout=1800,
    )
    assert _f1_against_x86(_detections(guest.stdout), faces_dir, built_model(MODEL)) >= F1_MIN


TFLITE_VENV = "/opt/tflite-runtime-check"


def test_tflite_runtime_fallback_on_arm64(arm64: Arm64Root, faces_dir: Path, built_model: Callable[..., Path]) -> None:
    """The fallback runtime on a Pi without LiteRT: tflite-runtime's aarch64 wheel (glibc >= 2.34) in a venv
    of its own, running faceagent from the source tree."""
    arm64.run(
        "sh",
        "-c",
        f"test -x {TFLITE_VENV}/bin/python || {{ python3 -m venv {TFLITE_VENV}.partial && "
        f"{TFLITE_VENV}.partial/bin/pip install --quiet --only-binary=:all: -c /src/scripts/pi-constraints.txt "
        f"tflite-runtime pillow opencv-python-headless && mv {TFLITE_VENV}.partial {TFLITE_VENV}; }}",
        timeout=1800,
    )
    python = ["env", "PYTHONPATH=/src", f"{TFLITE_VENV}/bin/python"]
    model = f"{GUEST_CACHE}/models/{MODEL}/{MODEL}-int8.tflite"
    facts = json.loads(arm64.run(*python, "/src/scripts/arm64/probe.py", model).stdout)
    print(json.dumps(facts))
    assert facts["runtime"] == "tflite_runtime"
    assert facts["wheels"]["ai-edge-litert"] is None
    guest = arm64.run(
        *python,
        "-m",
        "rpi_agent",
        *DETECT_ARGS,
        timeout=1800,
    )
    # TFLite's built-in int8 kernels round differently from XNNPACK's, which moves faces scoring near the
    # threshold across it: the bar is that of INT8 against FP32 (issue 2), not that of the same runtime.
    assert _f1_against_x86(_detections(guest.stdout), faces_dir, built_model(MODEL)) >= F1_MIN_OTHER_KERNELS


def test_installer_result_in_arm64_root(arm64: Arm64Root) -> None:
    """What scripts/install.sh left in the root: unit enabled, config and model in place, config valid."""
    root = arm64.path
    assert (root / "etc/systemd/system/multi-user.target.wants/faceagent.service").is_symlink()
    assert (root / "etc/faceagent/config.toml").is_file()
    assert (root / GUEST_CACHE.lstrip("/") / "models" / MODEL / f"{MODEL}-int8.tflite").is_file()
    proc = arm64.run("faceagent", "check-config", "/etc/faceagent/config.toml")
    assert "OK" in proc.stdout + proc.stderr
    owner = arm64.run("stat", "-c", "%U", GUEST_CACHE).stdout.strip()
    assert owner == "faceagent"


def test_bad_model_on_arm64_is_one_line(arm64: Arm64Root, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "truncated.tflite").write_bytes(b"TFL3" + bytes(60))
    proc = arm64.run(
        "faceagent",
        "detect",
        "--model",
        "/bad/truncated.tflite",
        "/shared/data/faces/1.jpg",
        binds=[f"{bad}:/bad:ro"],
        check=False,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "truncated.tflite" in proc.stderr


def _clip(model: Path, faces_dir: Path, frames: Path, *, repeats: int, blanks: int) -> tuple[str, int]:
    """A folder playing one photo ``repeats`` times then ``blanks`` empty frames; the photo is one whose faces
    all score clearly above or below the daemon's minimum, so x86 and arm64 must agree on their count."""
    detector = FaceDetector.from_model(model)
    for photo in sorted(faces_dir.glob("*.jpg")):
        rgb = load_rgb(photo)
        scores = [d.score for d in detector.detect(rgb).faces]
        count = sum(s >= 0.7 for s in scores)
        if 1 <= count <= 6 and all(abs(s - 0.7) > 0.08 for s in scores):
            break
    else:
        pytest.fail("no photo in the faces folder has a clear face count")
    frames.mkdir()
    for index in range(repeats):
        shutil.copy(photo, frames / f"{index:03d}.jpg")
    blank = Image.fromarray(np.full(rgb.shape, 128, dtype=np.uint8))
    for index in range(repeats, repeats + blanks):
        blank.save(frames / f"{index:03d}.jpg")
    return photo.name, count


DAEMON_CONFIG = """\
[detector]
model = "RFB-320"
threshold = 0.6

[mqtt]
host = "127.0.0.1"
client_id = "faceagent-arm64-test"

[mqtt.home_assistant]
enabled = false

[[cameras]]
name = "door"
source = "/frames"
fps = 0.0
hold_frames = 1

[cameras.filters]
min_score = 0.7

[cameras.tracker]
min_hits = 2
max_age_frames = 3
max_age_seconds = 0.0

[cameras.gpio]
relay_pin = 17
relay_seconds = 0.2
dwell_seconds = 0.0

[paths]
state_dir = "/tmp/faceagent-state"

[logging]
stats_interval = 0.0
"""


@pytest.fixture
def face_clip(tmp_path: Path, faces_dir: Path, built_model: Callable[..., Path]) -> tuple[str, int]:
    """``frames/`` in tmp_path: one photo 6 times, then 5 empty frames; returns the photo and its face count."""
    return _clip(built_model(MODEL), faces_dir, tmp_path / "frames", repeats=6, blanks=5)


def test_daemon_on_arm64_end_to_end(
    arm64: Arm64Root,
    face_clip: tuple[str, int],
    tmp_path: Path,
    broker: Broker,
    recorder: Callable[[list[str]], Recorder],
) -> None:
    photo, expected = face_clip
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "config.toml").write_text(DAEMON_CONFIG)
    rec = recorder(["faceagent/#"])
    proc = arm64.run(
        "faceagent",
        "run",
        "--config",
        "/conf/config.toml",
        "--source",
        "/frames",
        "--gpio-factory",
        "mock",
        "--mqtt-url",
        f"mqtt://127.0.0.1:{broker.port}",
        binds=[f"{tmp_path / 'frames'}:/frames:ro", f"{conf}:/conf:ro"],
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert rec.wait_for(lambda: b"stopped" in rec.payloads("faceagent/available"))
    assert rec.payloads("faceagent/available") == [b"online", b"stopped"]
    events = [json.loads(p) for p in rec.payloads("faceagent/events")]
    new = [e["after"]["id"] for e in events if e["type"] == "new"]
    ended = [e["after"]["id"] for e in events if e["type"] == "end"]
    print(f"{photo}: {expected} faces on x86; arm64 daemon: {len(new)} new, {len(ended)} end, {len(events)} events")
    assert len(new) == len(set(new)) == expected
    assert sorted(ended) == sorted(new)
    assert {e["after"]["camera"] for e in events} == {"door"}
    relay = rec.payloads("faceagent/door/relay/state")
    assert b"UNLOCKED" in relay
    assert relay[-1] == b"LOCKED"


def test_daemon_on_arm64_stops_on_sigterm(
    arm64: Arm64Root,
    face_clip: tuple[str, int],
    tmp_path: Path,
    broker: Broker,
    recorder: Callable[[list[str]], Recorder],
) -> None:
    """SIGTERM reaches the emulated daemon (what systemd sends on a Pi): clean stop, relay locked."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "config.toml").write_text(DAEMON_CONFIG.replace("fps = 0.0\n", "fps = 0.0\nloop = true\n"))
    rec = recorder(["faceagent/#"])
    proc = arm64.popen(
        "faceagent",
        "run",
        "--config",
        "/conf/config.toml",
        "--gpio-factory",
        "mock",
        "--mqtt-url",
        f"mqtt://127.0.0.1:{broker.port}",
        binds=[f"{tmp_path / 'frames'}:/frames:ro", f"{conf}:/conf:ro"],
    )
    try:
        ended = rec.wait_for(
            lambda: any(json.loads(p)["type"] == "end" for p in rec.payloads("faceagent/events")), timeout=600
        )
        assert ended, "no face ended within 10 minutes"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr[-3000:]
    assert rec.wait_for(lambda: rec.payloads("faceagent/available")[-1:] == [b"stopped"])
    events = [json.loads(p) for p in rec.payloads("faceagent/events")]
    new = [e["after"]["id"] for e in events if e["type"] == "new"]
    assert len(new) == len(set(new))
    assert {e["after"]["id"] for e in events if e["type"] == "end"} <= set(new)
    assert rec.payloads("faceagent/door/relay/state")[-1] == b"LOCKED"


LANDMARK_MODEL = "retinaface-mnet-320"


def test_insn_count_of_a_landmark_model_on_pi4_and_pi5_cores(
    arm64: Arm64Root, faces_dir: Path, built_model: Callable[..., Path]
) -> None:
    """scripts/arm64/insn_count.sh on a landmark model (corner resize, landmark decoding) on the Pi 4's and the
    Pi 5's core: the arm64 workload finds the faces x86 finds, and the A76 needs far fewer instructions (its
    dot product). N = 3 keeps it to about half a minute; the counts in docs/arm64.md use N = 50."""
    model = built_model(LANDMARK_MODEL)
    proc = subprocess.run(
        ["bash", str(SCRIPTS / "insn_count.sh"), "--model", str(model), "--n", "3",
         "--cpus", "cortex-a72 cortex-a76", "--stages", "detect"],
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {row["cpu"]: row for row in map(json.loads, proc.stdout.splitlines())}
    print(json.dumps(rows, indent=1))
    x86_faces = len(FaceDetector.from_model(model, num_threads=1).detect(load_rgb(faces_dir / "1.jpg")).faces)
    assert sorted(rows) == ["cortex-a72", "cortex-a76"]
    for row in rows.values():
        assert (row["input"], row["resize"], row["landmarks"]) == ("320x256", "corner", True)
        # int8 kernels of other ISAs may round a score near the threshold the other way.
        assert abs(row["faces"] - x86_faces) <= 1
        assert row["insns_per_frame"] > 10_000_000
    assert rows["cortex-a76"]["insns_per_frame"] < 0.75 * rows["cortex-a72"]["insns_per_frame"]


@pytest.mark.parametrize(
    ("args", "code", "names"),
    [
        (("--model", "no-such-variant"), 1, "no-such-variant"),
        (("--model", "/nowhere/x.tflite"), 1, "/nowhere/x.tflite"),
        (("--n", "0"), 2, "'0'"),
        (("--cpus", "cortex-a9"), 2, "cortex-a9"),
        (("--stages", "everything"), 2, "everything"),
        (("--engine", "mnn", "--model", "RFB-320"), 1, "RFB-320"),
    ],
)
def test_insn_count_bad_arguments_are_one_line(args: tuple[str, ...], code: int, names: str, shared: Path) -> None:
    """Refused before anything is built or emulated: one line naming what is wrong, no count."""
    proc = subprocess.run(["bash", str(SCRIPTS / "insn_count.sh"), *args], capture_output=True, text=True,
                          timeout=60, check=False, env={**os.environ, "FACEAGENT_SHARED_DIR": str(shared)})
    assert proc.returncode == code
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert names in proc.stderr
