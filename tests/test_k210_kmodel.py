"""K210 kmodel (V5, nncase 1.9): compiled, simulated on the shared photos, compared with the Pi's INT8 TFLite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from k210_support import (
    KMODELS,
    camera_frames,
    f1_score,
    kmodel,
    kmodel_detections,
    match_counts,
    photos,
    simulated,
)

from rpi_agent.detection.decoder import DecodeOptions
from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.k210.simulator import simulate
from rpi_agent.paths import model_file

THRESHOLD = 0.6


@pytest.mark.parametrize("name", KMODELS)
def test_simulated_kmodel_finds_the_faces_of_the_int8_tflite(name: str) -> None:
    int8 = model_file(name, "int8")
    if not int8.is_file():
        pytest.fail(f"{int8} missing: run `faceagent models build {name}` first")
    detector = FaceDetector.from_model(int8, resize="stretch", options=DecodeOptions(score_threshold=THRESHOLD))
    reference = [detector.detect(rgb).faces for rgb in photos()[1]]
    found = kmodel_detections(name, threshold=THRESHOLD)
    totals = [0, 0, 0]
    for mine, theirs in zip(found, reference, strict=True):
        for k, v in enumerate(match_counts(mine, theirs, min_iou=0.5)):
            totals[k] += v
    tp, fp, fn = totals
    print(f"{name}: kmodel {tp + fp} faces, INT8 TFLite {tp + fn}, matched {tp}, F1 {f1_score(tp, fp, fn):.4f}")
    assert tp + fn > 100, "the photos hold well over 100 faces; the reference found too few"
    assert f1_score(tp, fp, fn) >= 0.95


@pytest.mark.parametrize("name", KMODELS)
def test_build_info_records_the_kmodel_and_its_op_split(name: str) -> None:
    path = kmodel(name)
    info = json.loads((path.parent / "build-info.json").read_text()).get("kmodel_v5")
    if info is None or info["kmodel_sha256"] is None:
        pytest.fail("build-info.json has no kmodel_v5 entry")
    assert info["size_bytes"] == path.stat().st_size
    assert info["calibration_samples"] == len(photos()[0])
    ops = info["ops"]
    # Every convolution runs on the KPU; the softmax over the two classes is a CPU op.
    assert ops["kpu"]["KPUConv2D"] >= 40
    assert ops["cpu"]["Softmax"] == 1
    assert not any(op.startswith("Conv") for op in ops["cpu"])


def _faceagent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rpi_agent", *args], capture_output=True, text=True,
                          check=False, env=env)


def test_build_refuses_an_input_larger_than_the_kpu_takes() -> None:
    proc = _faceagent("k210", "build", "RFB-640")
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "exceeds the K210 KPU maximum" in proc.stderr


def test_build_refuses_a_missing_ncc(tmp_path: Path) -> None:
    proc = _faceagent("k210", "build", "slim-320", "--kmodel", "4", "--ncc", str(tmp_path / "ncc"))
    assert proc.returncode == 1
    assert "not an executable ncc binary" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_v5_build_is_reproducible(tmp_path: Path) -> None:
    # Two builds differ in a few padding bytes (see toolchain notes), so compare what they compute.
    proc = _faceagent("k210", "build", "slim-320", "--kmodel", "5", "--out", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["kmodel_version"] == 5 and result["ops"]["kpu"]["KPUConv2D"] >= 40
    rebuilt = simulate(Path(result["path"]), camera_frames()[:4])
    scores, loc = simulated("slim-320")
    assert np.array_equal(rebuilt.scores, scores[:4]) and np.array_equal(rebuilt.loc, loc[:4])
    info = json.loads((tmp_path / "build-info.json").read_text())["kmodel_v5"]
    assert info["memory_bytes"]["model"] == result["bytes"]
