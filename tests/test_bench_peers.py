"""scripts/bench_peers.py: upstream's runtimes of the same networks, beside our INT8, in one process."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_peers.py"


@pytest.fixture(scope="module")
def peers():
    spec = importlib.util.spec_from_file_location("bench_peers", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["RFB-320", "slim-320"])
def test_fp32_peers_compute_what_onnxruntime_computes(peers, built_model, faces_dir, name):
    built_model(name)
    frames = peers.load_frames(faces_dir)[:3]
    engines, refused = peers.engines_for(name, frames)
    assert {"litert_int8", "ort_fp32", "ort_int8_qdq", "mnn_fp32", "ncnn_fp32"} <= engines.keys(), refused
    reference = engines["ort_fp32"]
    for rgb in frames:
        reference.infer(reference.prepare(rgb))
        ref_scores, ref_loc = reference.outputs()
        for key in ("mnn_fp32", "ncnn_fp32"):
            engines[key].infer(engines[key].prepare(rgb))
            scores, loc = engines[key].outputs()
            assert np.abs(scores - ref_scores).max() < 1e-3, key
            assert np.abs(loc - ref_loc).max() < 1e-2, key
        for key in ("litert_int8", "ort_int8_qdq"):  # quantised: close, not equal
            raw = engines[key].run(rgb)
            assert np.corrcoef(raw.scores, ref_scores[:, 1])[0, 1] > 0.95, key


def test_script_times_every_peer_and_names_what_cannot_run(tmp_path, built_model, faces_dir):
    built_model("RFB-320")
    built_model("slim-320")
    for photo in sorted(faces_dir.glob("*.jpg"))[:2]:
        (tmp_path / photo.name).symlink_to(photo)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--rounds", "1", "--images", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(proc.stdout)
    assert report["cpu"]["model"] and report["frames"] == 2
    engines = report["engines"]
    for name in ("RFB-320", "slim-320"):
        assert engines[f"{name}/litert_int8"]["vs_our_int8"] == 1.0
        for key in ("ort_fp32", "ort_int8_qdq", "mnn_fp32", "ncnn_fp32"):
            assert engines[f"{name}/{key}"]["ms"] > 0
    assert engines["slim-320/mnn_int8"]["ms"] > 0 and engines["yunet"]["ms"] > 0
    # MNN 3.6.1 has no x86 kernel for upstream's RFB INT8 file ("Don't support type [EltwiseInt8]").
    assert "MNN cannot run RFB-320-quant-ADMM-32.mnn" in report["refused"]["RFB-320/mnn_int8"]


def test_yunet_finds_the_faces_of_a_group_photo(peers, faces_dir):
    from rpi_agent.detection.preprocess import fit_to_input
    from rpi_agent.imaging.files import load_rgb

    frame, _ = fit_to_input(load_rgb(faces_dir / "2.jpg"), 320, 240, "stretch")
    rows = peers.YuNet().xywh(frame)
    assert (rows[:, 4] > 0.5).sum() == 4  # four people facing the camera
