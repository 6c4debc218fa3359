"""The landmark networks on the K210: kmodels (V5, nncase 1.9) and the board decoder with landmarks.

The kmodels take the camera's raw RGB bytes (the BGR mean the networks were trained with is a
subtraction in the graph); the build checks them against the INT8 TFLite on the 24 photos, boxes
and landmarks. The board's decoder (k210/facedet.py) runs under a real MicroPython on the
simulated outputs and must give the NumPy decoder's faces and landmarks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from k210_support import (
    K210_DIR,
    LANDMARK_KMODELS,
    LANDMARK_SPEC,
    MP_LOAD,
    camera_frames,
    kmodel,
    numpy_faces_landmarks,
    simulated_outputs,
)

from rpi_agent.detection.priors import generate_priors
from rpi_agent.k210.agreement import MIN_F1, KpuOutputs, compare
from rpi_agent.k210.micropython import run_micropython
from rpi_agent.paths import model_file

# The board reads the outputs the way main.py reads MaixPy's output maps: score by score, boxes
# and landmarks of candidates only, through slices.
MP_DECODE = MP_LOAD + """
pri = facedet.priors_for(cfg["family"], 320, 240)
for i in range(cfg["frames"]):
    s = load("/data/%d.scores" % i)
    b = load("/data/%d.loc" % i)
    m = load("/data/%d.landmarks" % i)
    for thr in cfg["thresholds"]:
        faces = facedet.detect(lambda a, z: s[a:z], lambda a, z: b[a:z], pri, thr, 0.3, 50, 200, 256,
                               lambda k: s[k], lambda a, z: m[a:z])
        print(json.dumps({"frame": i, "threshold": thr, "faces": facedet.to_pixels(faces, 320, 240, 3)}))
"""
THRESHOLDS = (0.6, 0.3)
LANDMARK_NME_MAX = 0.05  # mean landmark distance of matched faces / face size, kmodel vs TFLite


def _board_decode(tmp_path: Path, name: str, frames: int) -> list[dict]:
    out = simulated_outputs(name)
    assert out.landmarks is not None
    files = {"/lib/facedet.py": K210_DIR / "facedet.py"}
    for i in range(frames):
        for kind, arr in (("scores", out.scores[i]), ("loc", out.loc[i]), ("landmarks", out.landmarks[i])):
            path = tmp_path / f"{i}.{kind}"
            path.write_bytes(np.ascontiguousarray(arr, dtype="<f4").tobytes())
            files[f"/data/{i}.{kind}"] = path
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"frames": frames, "thresholds": THRESHOLDS, "family": "ssd-landmark"}))
    files["/data/cfg.json"] = cfg
    text = run_micropython(MP_DECODE, files=files, sys_path=["/lib"])
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("name", LANDMARK_KMODELS[:1])
def test_micropython_decoder_gives_the_numpy_faces_and_landmarks(tmp_path: Path, name: str) -> None:
    frames = 12
    results = _board_decode(tmp_path, name, frames)
    assert len(results) == frames * len(THRESHOLDS)
    out = simulated_outputs(name)
    faces = 0
    for res in results:
        boxes, best, points = numpy_faces_landmarks(out, res["frame"], threshold=res["threshold"], top_k=50)
        board = res["faces"]
        label = f"{name} frame {res['frame']} threshold {res['threshold']}"
        assert len(board) == len(best), label
        if not board:
            continue
        np.testing.assert_allclose([f[:4] for f in board], np.clip(boxes, 0, [320, 240, 320, 240]), atol=2e-3,
                                   err_msg=label)
        np.testing.assert_allclose([f[4] for f in board], best, atol=1e-4, err_msg=label)
        # Landmarks are scaled to pixels but not clipped (a face cut by the frame edge).
        np.testing.assert_allclose([f[5] for f in board], points, atol=2e-3, err_msg=label)
        faces += len(board)
    assert faces > 300  # crowded photos: the comparison is not vacuous


def test_board_priors_of_the_landmark_layout_are_unclipped_and_equal_numpys() -> None:
    script = ("import facedet\np = facedet.priors_for('ssd-landmark', 320, 240)\n"
              "print(p.count)\nfor i in range(p.count):\n    print('%r %r %r %r' % p.get(i))\n")
    lines = run_micropython(script, files={"/lib/facedet.py": K210_DIR / "facedet.py"}, sys_path=["/lib"]).split()
    board = np.array(lines[1:], dtype=np.float64).reshape(-1, 4)
    table = generate_priors(LANDMARK_SPEC)
    assert int(lines[0]) == table.shape[0] == 4420
    np.testing.assert_allclose(board, table, atol=1e-6)
    assert board[:, 2:].max() > 1.0  # the 256-pixel anchors are wider than the 240-pixel frame is tall


@pytest.mark.parametrize("name", LANDMARK_KMODELS)
def test_kmodel_takes_raw_rgb_and_agrees_with_the_int8_tflite_on_boxes_and_landmarks(name: str) -> None:
    path = kmodel(name)
    info = json.loads((path.parent / "build-info.json").read_text())["kmodel_v5"]
    assert info["input"] == {"width": 320, "height": 240, "layout": "NCHW uint8 RGB", "mean": 0.0, "std": 1.0,
                             "landmarks": True}
    recorded = info["agreement_vs_int8_tflite"]
    result = compare(model_file(name, "int8"), simulated_outputs(name), camera_frames())
    print(f"{name}: {result}")
    assert result.tflite_faces > 300 and result.f1 >= MIN_F1
    assert result.landmark_faces == result.matched and result.landmark_nme is not None
    assert result.landmark_nme < LANDMARK_NME_MAX
    assert recorded["f1"] == result.f1 and recorded["landmark_nme"] == result.landmark_nme


def test_the_same_kmodel_fed_bgr_bytes_loses_the_landmarks() -> None:
    # What the check above rests on: were the kmodel's input in the other channel order (or the
    # mean applied twice), the same comparison would fail. BGR frames through the RGB kmodel:
    from rpi_agent.k210.simulator import simulate

    name = LANDMARK_KMODELS[0]
    frames = camera_frames()[:8]
    bgr = simulate(kmodel(name), np.ascontiguousarray(frames[..., ::-1]))
    wrong = compare(model_file(name, "int8"), bgr, frames)
    out = simulated_outputs(name)
    assert out.landmarks is not None
    right = compare(model_file(name, "int8"), KpuOutputs(out.scores[:8], out.loc[:8], out.landmarks[:8]), frames)
    print(f"RGB: {right}\nBGR: {wrong}")
    assert right.f1 >= MIN_F1
    assert wrong.f1 < right.f1 - 0.02 or (wrong.landmark_nme or 0) > 1.5 * (right.landmark_nme or 1)


@pytest.mark.parametrize("name", LANDMARK_KMODELS)
def test_every_convolution_runs_on_the_kpu(name: str) -> None:
    info = json.loads((kmodel(name).parent / "build-info.json").read_text())["kmodel_v5"]
    ops = info["ops"]
    assert ops["kpu"]["KPUConv2D"] >= 49
    assert not any(op.startswith("Conv") for op in ops["cpu"])
    # The training mean is one subtraction on the CPU, over the uint8 frame, before the first KPU layer.
    assert ops["cpu"]["Binary"] == 1 and ops["cpu"]["Softmax"] == 1
    assert info["memory_bytes"]["total"] < 6 * 1024 * 1024  # the K210's 6 MB of main SRAM


def test_retinaface_runs_its_upsampling_on_the_cpu_and_fits_the_k210() -> None:
    # RetinaFace's feature pyramid: two nearest 2x upsamplings, each added to a lateral 1x1 conv.
    # nncase 1.9 puts every convolution (and the additions) on the KPU and both resizes on the CPU.
    name = "retinaface-mnet-320"
    info = json.loads((kmodel(name).parent / "build-info.json").read_text())["kmodel_v5"]
    assert info["input"]["width"] == 320 and info["input"]["height"] == 256  # the 320x240 frame + 16 rows of mean
    ops = info["ops"]
    assert ops["cpu"]["ResizeImage"] == 2 and "ResizeImage" not in ops["kpu"]
    assert ops["kpu"]["KPUConv2D"] >= 56 and not any(op.startswith("Conv") for op in ops["cpu"])
    assert info["memory_bytes"]["total"] < 6 * 1024 * 1024
    check = info["agreement_vs_int8_tflite"]
    assert check["f1"] >= MIN_F1 and check["landmark_nme"] < LANDMARK_NME_MAX


def test_no_v4_is_tried_for_an_input_the_board_script_does_not_feed() -> None:
    proc = subprocess.run([sys.executable, "-m", "rpi_agent", "k210", "build", "retinaface-mnet-320", "--kmodel", "4"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "input 320x256 is not the camera's 320x240 frame" in proc.stderr and "--kmodel 5" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "rpi_agent", "k210", "build", "retinaface-mnet-320@320x240"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "multiples of 32" in proc.stderr and "Traceback" not in proc.stderr
