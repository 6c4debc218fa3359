"""`check-config` fails exactly where `run` would: non-finite numbers, shared pins and devices, sources,
models and state directories, each one line and exit 78 from both commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tflite_support import constant_model

from rpi_agent.cli import EX_CONFIG, main

CAMERA = '[[cameras]]\nname = "door"\nsource = "/dev/video0"\n'


def _camera(name: str, source: str, extra: str = "") -> str:
    return f'[[cameras]]\nname = "{name}"\nsource = "{source}"\n{extra}'


def check_both(capsys, path: Path, expected: str) -> None:
    """``check-config`` and ``run`` (in process, as the ``faceagent`` entry point) give the same one line."""
    for argv in (["check-config", str(path)], ["run", "--config", str(path), "--gpio-factory", "mock"]):
        code = main(argv)
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.startswith("faceagent:")]
        assert code == EX_CONFIG, (argv, err)
        assert len(lines) == 1 and lines[0].startswith("faceagent: config error: "), err
        assert expected in lines[0], lines[0]
        assert "Traceback" not in err and len(lines[0]) <= 420, lines[0][:500]


@pytest.fixture
def write(tmp_path, built_model):
    model = built_model("RFB-320")

    def make(text: str, *, detector: str | None = None) -> Path:
        path = tmp_path / "config.toml"
        head = detector if detector is not None else f'[detector]\nmodel = "{model}"\n'
        path.write_text(f'{head}[mqtt]\nenabled = false\n[paths]\nstate_dir = "{tmp_path / "state"}"\n{text}')
        return path

    return make


NON_FINITE = {
    "threshold nan": ('[detector]\nmodel = "RFB-320"\nthreshold = nan\n', CAMERA, "detector.threshold: nan is not"),
    "relay_seconds nan": (None, CAMERA + "[cameras.gpio]\nrelay_pin = 17\nrelay_seconds = nan\n",
                          "cameras[0].gpio.relay_seconds: nan is not a finite number"),
    "dwell_seconds inf": (None, CAMERA + "[cameras.gpio]\nrelay_pin = 17\ndwell_seconds = inf\n",
                          "cameras[0].gpio.dwell_seconds: inf is not a finite number"),
    "fps nan": (None, CAMERA.replace('"\n', '"\nfps = nan\n', 1), "fps: nan is not a finite number"),
    "stats_interval nan": (None, CAMERA + "[logging]\nstats_interval = nan\n", "logging.stats_interval: nan"),
    "max_age_seconds -inf": (None, CAMERA + "[cameras.tracker]\nmax_age_seconds = -inf\n", "-inf is not a finite"),
    "zone corner nan": (None, CAMERA + "[cameras.zones.z]\npoints = [[0, 0], [1, nan], [1, 1]]\n",
                        "cameras[0].zones.z.points[1][1]: nan is not a finite number"),
    "400-digit float": (None, CAMERA + "[cameras.gpio]\nrelay_pin = 17\nbeep_seconds = 1" + "0" * 400 + "\n",
                        "(401 characters) is too large for a number"),
    "5000-digit integer": (None, CAMERA + "[cameras.gpio]\nrelay_pin = 1" + "0" * 5000 + "\n",
                           "cannot parse the config file: Exceeds the limit"),
}


@pytest.mark.parametrize("case", sorted(NON_FINITE))
def test_non_finite_numbers_are_refused(case, write, capsys):
    detector, text, expected = NON_FINITE[case]
    check_both(capsys, write(text, detector=detector), expected)


def test_nan_threshold_through_the_real_command(write):
    path = write(CAMERA, detector='[detector]\nmodel = "RFB-320"\nthreshold = nan\n')
    for args in (["check-config", str(path)], ["run", "--config", str(path), "--gpio-factory", "mock"]):
        proc = subprocess.run([sys.executable, "-m", "rpi_agent", *args], capture_output=True, text=True,
                              timeout=120, check=False)
        assert proc.returncode == EX_CONFIG, proc.stderr
        assert proc.stderr.strip() == "faceagent: config error: detector.threshold: nan is not a finite number"


def test_one_pin_and_one_device_per_camera(write, capsys):
    gpio = "[cameras.gpio]\nrelay_pin = 17\n"
    check_both(capsys, write(_camera("a", "/dev/video0", gpio) + _camera("b", "/dev/video1", gpio)),
               "cameras[1].gpio.relay_pin: GPIO 17 is already used by cameras[0].gpio.relay_pin")
    check_both(capsys, write(_camera("a", "/dev/video0", gpio) + _camera("b", "/dev/video1",
                                                                         "[cameras.gpio]\nled_pin = 17\n")),
               "cameras[1].gpio.led_pin: GPIO 17 is already used by cameras[0].gpio.relay_pin")
    check_both(capsys, write(_camera("a", "0") + _camera("b", "/dev/video0")),
               "cameras[1].source: '/dev/video0' is already used by cameras[0].source")
    check_both(capsys, write(_camera("a", "picamera") + _camera("b", "picamera:0")),
               "cameras[1].source: 'picamera:0' is already used by cameras[0].source")


def test_sources_that_run_would_fail_on(write, capsys, tmp_path):
    check_both(capsys, write(_camera("door", "x" * (1 << 20))),
               "cameras[0].source: length 1048576 is above the maximum 4096")
    long_name = f"/tmp/{'a' * 300}.mp4"
    check_both(capsys, write(_camera("door", long_name)), "cameras[0].source: ")
    check_both(capsys, write(_camera("door", long_name)), ": file name too long")
    check_both(capsys, write(_camera("door", str(tmp_path / "gone.mp4"))),
               f"cameras[0].source: {tmp_path / 'gone.mp4'}: no such file or folder")
    (tmp_path / "empty").mkdir()
    check_both(capsys, write(_camera("door", str(tmp_path / "empty"))), "folder holds no images")
    (tmp_path / "notes.txt").write_text("not a video")
    check_both(capsys, write(_camera("door", str(tmp_path / "notes.txt"))), "not a video file OpenCV can open")
    (tmp_path / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    check_both(capsys, write(_camera("door", str(tmp_path / "cut.jpg"))), "cut.jpg: ")
    check_both(capsys, write(_camera("door", "\u00b2")), "cameras[0].source: ²: no such file or folder")
    check_both(capsys, write(_camera("door", "picamera:x")), "cameras[0].source: 'picamera:x': expected")
    check_both(capsys, write(_camera("door", "k210:/dev/ttyUSB0?baud=7")), "cameras[0].source: ")


def test_models_that_run_would_fail_on(write, capsys, tmp_path):
    text = tmp_path / "notes.tflite"
    text.write_text("not a model at all")
    cases = {
        str(text): "is not a TFLite model",
        str(constant_model(tmp_path / "few.tflite", [(1, 100, 2), (1, 100, 4)])):
            "model outputs 100 boxes but the priors for 320x240 number 4420",
        str(constant_model(tmp_path / "other.tflite", [(1, 100, 7)])):
            "outputs [[1, 100, 7]] are not (scores [1,N,2], boxes [1,N,4][, landmarks [1,N,10]])",
        "RFB-320:fp16": "unknown precision 'fp16'",
        "no-such-variant": "is not built",
    }
    for model, expected in cases.items():
        check_both(capsys, write(CAMERA, detector=f'[detector]\nmodel = "{model}"\n'), "detector.model: ")
        check_both(capsys, write(CAMERA, detector=f'[detector]\nmodel = "{model}"\n'), expected)


def test_unusable_state_dir(tmp_path, built_model, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    for state_dir in (blocker, blocker / "state"):
        path = tmp_path / "config.toml"
        path.write_text(f'[detector]\nmodel = "{built_model("RFB-320")}"\n[mqtt]\nenabled = false\n'
                        f'[paths]\nstate_dir = "{state_dir}"\n{CAMERA}')
        check_both(capsys, path, f"paths.state_dir: cannot create {state_dir}: Not a directory")


def test_nul_and_huge_strings_are_one_short_line(write, capsys):
    check_both(capsys, write(_camera("door", "/dev/video0\\u0000x")),
               "cameras[0].source: must not contain a NUL character")
    check_both(capsys, write(_camera("d" * 100_000, "/dev/video0")),
               "cameras[0].name: length 100000 is above the maximum 64")
    check_both(capsys, write(CAMERA + f"[cameras.zones.{'z' * 5000}]\npoints = [[0, 0], [1, 0], [1, 1]]\n"),
               "zone names may only hold letters")
