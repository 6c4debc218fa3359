"""K210 kmodel (V5, nncase 1.9): compiled, simulated on the shared photos, compared with the Pi's INT8 TFLite."""

from __future__ import annotations

import json
import os
import stat
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
    proc = _faceagent("k210", "build", "slim-320", "--ncc", str(tmp_path / "ncc"))
    assert proc.returncode == 1
    assert "not an executable ncc binary" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_v4_build_hands_ncc_the_onnx_and_uint8_calibration_frames(tmp_path: Path) -> None:
    # ncc v0.2.0-beta4 is not installable here: a stand-in checks the arguments and dataset
    # and writes a file, so what is tested is faceagent's side of the contract.
    ncc = tmp_path / "ncc"
    log = tmp_path / "ncc-args.json"
    ncc.write_text(f"""#!{sys.executable}
import json, sys, pathlib
from PIL import Image
args = sys.argv[1:]
ds = pathlib.Path(args[args.index("--dataset") + 1])
sizes = sorted({{Image.open(p).size for p in ds.iterdir()}})
json.dump({{"args": args, "images": len(list(ds.iterdir())), "sizes": sizes}}, open({str(log)!r}, "w"))
pathlib.Path(args[2]).write_bytes(b"KMDL" + bytes(60))
""")
    ncc.chmod(ncc.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ)
    proc = _faceagent("k210", "build", "slim-320", "--ncc", str(ncc), "--out", str(tmp_path / "out"), "--json",
                      env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    seen = json.loads(log.read_text())
    args = seen["args"]
    assert args[0] == "compile" and args[1].endswith(".onnx")
    assert args[args.index("-t") + 1] == "k210" and args[args.index("--inference-type") + 1] == "uint8"
    assert float(args[args.index("--input-mean") + 1]) == pytest.approx(127 / 255)
    assert float(args[args.index("--input-std") + 1]) == pytest.approx(128 / 255)
    assert seen["images"] == len(photos()[0]) and seen["sizes"] == [[320, 240]]
    assert result["kmodel_version"] == 4 and Path(result["path"]).read_bytes().startswith(b"KMDL")
    info = json.loads((tmp_path / "out" / "build-info.json").read_text())
    assert info["kmodel_v4"]["size_bytes"] == 64
    assert args[args.index("-i") + 1] == "onnx"

    # ncc releases before v0.2.0-beta3 read no ONNX: a TFLite source is passed as such.
    fp32 = model_file("slim-320", "fp32")
    proc = _faceagent("k210", "build", "slim-320", "--ncc", str(ncc), "--source", str(fp32),
                      "--out", str(tmp_path / "out"), env=env)
    assert proc.returncode == 0, proc.stderr
    args = json.loads(log.read_text())["args"]
    assert args[1] == str(fp32) and args[args.index("-i") + 1] == "tflite"


def test_cli_v5_build_is_reproducible(tmp_path: Path) -> None:
    # Two builds differ in a few padding bytes (see toolchain notes), so compare what they compute.
    proc = _faceagent("k210", "build", "slim-320", "--out", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["kmodel_version"] == 5 and result["ops"]["kpu"]["KPUConv2D"] >= 40
    rebuilt = simulate(Path(result["path"]), camera_frames()[:4])
    scores, loc = simulated("slim-320")
    assert np.array_equal(rebuilt.scores, scores[:4]) and np.array_equal(rebuilt.loc, loc[:4])
    info = json.loads((tmp_path / "build-info.json").read_text())["kmodel_v5"]
    assert info["memory_bytes"]["model"] == result["bytes"]
