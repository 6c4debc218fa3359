"""``detector.model = "auto"``, the shipped default: each board gets the model chosen for it."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from rpi_agent import paths
from rpi_agent.config import parse_config
from rpi_agent.imaging.files import load_rgb
from rpi_agent.paths import REPO_ROOT, auto_model, board_name, resolve_model
from rpi_agent.runtime.daemon import build_face_detector

BOARDS = {
    "Raspberry Pi 5 Model B Rev 1.0": "retinaface-mnet-640",
    "Raspberry Pi 500 Rev 1.0": "retinaface-mnet-640",
    "Raspberry Pi Compute Module 5 Rev 1.0": "retinaface-mnet-640",
    "Raspberry Pi 4 Model B Rev 1.4": "RFB-landmark-320",
    "Raspberry Pi 400 Rev 1.0": "RFB-landmark-320",
    "Raspberry Pi Compute Module 4 Rev 1.0": "RFB-landmark-320",
    "Raspberry Pi Compute Module 4S Rev 1.0": "RFB-landmark-320",
    "Raspberry Pi 3 Model B Plus Rev 1.3": "RFB-320",
    "Raspberry Pi Zero 2 W Rev 1.0": "RFB-320",
    "Raspberry Pi 45 Model X": "RFB-320",  # a future board is not taken for a Pi 4
    "": "RFB-320",
}


@pytest.mark.parametrize(("board", "model"), BOARDS.items())
def test_each_board_gets_its_model(board, model):
    assert auto_model(board or None) == model


def fake_board(monkeypatch, tmp_path, name: str | None):
    """Point the device-tree lookup at a file holding ``name`` as the firmware writes it (NUL-terminated)."""
    path = tmp_path / "model"
    if name is not None:
        path.write_bytes(name.encode() + b"\0")
    monkeypatch.setattr(paths, "DEVICE_TREE_MODEL", path)


def test_the_board_name_is_read_without_its_nul(monkeypatch, tmp_path):
    fake_board(monkeypatch, tmp_path, "Raspberry Pi 5 Model B Rev 1.0")
    assert board_name() == "Raspberry Pi 5 Model B Rev 1.0"
    fake_board(monkeypatch, tmp_path / "missing", None)
    assert board_name() is None


def test_the_shipped_config_and_the_schema_default_to_auto():
    shipped = tomllib.loads((REPO_ROOT / "config.toml").read_text())
    assert shipped["detector"]["model"] == "auto"
    assert parse_config({}).detector.model == "auto"


@pytest.mark.parametrize("case", [("Raspberry Pi 4 Model B Rev 1.4", "RFB-landmark-320"),
                                  ("Raspberry Pi 5 Model B Rev 1.0", "retinaface-mnet-640"),
                                  (None, "RFB-320")])
def test_the_daemon_runs_the_boards_model(monkeypatch, tmp_path, built_model, faces_dir, case):
    board, model = case
    expected = built_model(model)
    fake_board(monkeypatch, tmp_path, board)
    assert resolve_model("auto") == expected
    assert resolve_model("auto:fp32") == built_model(model, "fp32")
    detector = build_face_detector(parse_config({}).detector)
    assert detector.detector.path == expected  # type: ignore[attr-defined]
    faces = detector.detect(load_rgb(faces_dir / "5.jpg")).faces  # type: ignore[attr-defined]
    assert faces
    assert all((f.landmarks is not None) == (model != "RFB-320") for f in faces)


def test_models_auto_prints_the_choice():
    run = [sys.executable, "-m", "rpi_agent", "models", "auto", "--board", "Raspberry Pi 5 Model B Rev 1.0"]
    proc = subprocess.run(run, capture_output=True, text=True, check=True, timeout=60)
    assert proc.stdout == "retinaface-mnet-640\n"
    assert proc.stderr == "board: Raspberry Pi 5 Model B Rev 1.0\n"
