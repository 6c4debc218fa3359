"""The model build: our networks against upstream, the INT8/FP32 files, caching, reproducibility.

These run the real toolchain in the build venv (CI creates it through `faceagent models build`)
and the real TFLite runtime on the built models and the shared photos.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from rpi_agent.models import buildenv, load_manifest
from rpi_agent.models.calibration import hash_images, list_images
from rpi_agent.paths import REPO_ROOT

MAX_320_INT8_BYTES = 450 * 1024


def _build_python() -> Path:
    python = buildenv.venv_python()
    if not python.is_file():
        pytest.fail(f"build venv missing ({python}): run scripts/build_env.sh or `faceagent models build`")
    return python


def _built(name: str) -> Path:
    out = Path(os.environ["FACEAGENT_CACHE_DIR"]) / "models" / name
    if not (out / "build-info.json").is_file():
        pytest.fail(f"{name} is not built in {out.parent}: run `faceagent models build` (CI does this first)")
    return out


def _photos(faces_dir: Path, width: int, height: int) -> list[np.ndarray]:
    return [cv2.resize(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), (width, height),
                       interpolation=cv2.INTER_LINEAR) for p in list_images(faces_dir)]


def _run_tflite(path: Path, frames: list[np.ndarray], *, normalise: bool) -> list[dict[int, np.ndarray]]:
    """Raw outputs keyed by their last dimension (2 = scores, 4 = boxes)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    (inp,) = interp.get_input_details()
    results = []
    for rgb in frames:
        if normalise:
            x = ((rgb.astype(np.float32) - 127.0) / 128.0).astype(inp["dtype"])
        else:  # the INT8 builds take the byte with its top bit flipped (zero point -1, see convert.py)
            x = (rgb ^ 0x80).view(np.int8) if inp["dtype"] == np.int8 else rgb
        interp.set_tensor(inp["index"], x[None])
        interp.invoke()
        results.append({int(o["shape"][-1]): interp.get_tensor(o["index"]).copy()
                        for o in interp.get_output_details()})
    return results


def _dequantised_scores(path: Path, frames: list[np.ndarray]) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    detail = next(o for o in Interpreter(model_path=str(path)).get_output_details() if o["shape"][-1] == 2)
    scale, zero = detail["quantization"]
    raw = np.stack([r[2] for r in _run_tflite(path, frames, normalise=False)]).astype(np.float32)
    return (raw - zero) * scale


def _faceagent(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, FACEAGENT_CACHE_DIR=str(cache))
    # The build venv is shared: a test cache must not create a second 3 GB copy.
    env[buildenv.PYTHON_ENV] = str(_build_python())
    return subprocess.run([sys.executable, "-m", "rpi_agent", *args], env=env, capture_output=True, text=True,
                          timeout=900, check=False)


@pytest.fixture(scope="module")
def verify_report(upstream_dir: Path, faces_dir: Path) -> dict[str, Any]:
    """Our PyTorch networks vs the upstream ONNX, computed in the build venv."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        [str(_build_python()), "-m", "rpi_agent.models.verify", "--upstream", str(upstream_dir),
         "--images", str(faces_dir)], env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["slim", "RFB"])
def test_our_network_reproduces_the_upstream_onnx(verify_report: dict[str, Any], arch: str) -> None:
    report = verify_report[arch]
    assert report["images"] == 24
    assert report["shape"] == [1, 4420, 2]
    assert report["max_abs_diff"]["scores"] < 1e-4
    assert report["max_abs_diff"]["boxes"] < 1e-3
    assert report["top_face_score"] > 0.99  # the photos do contain confident faces


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["slim", "RFB"])
def test_640_weights_load_strictly_at_any_size(verify_report: dict[str, Any], arch: str) -> None:
    manifest = load_manifest()
    for size, shapes in verify_report[arch]["shapes_640_weights"].items():
        n = manifest.variant(f"{arch}-640@{size}").num_priors
        assert shapes == [[1, n, 2], [1, n, 4]], size


@pytest.mark.slow
def test_strict_loading_rejects_the_other_architecture(verify_report: dict[str, Any]) -> None:
    for arch, error in verify_report["strict_mismatch"].items():
        assert error is not None and "state_dict" in error, arch


@pytest.mark.parametrize("name", ["slim-320", "RFB-320", "slim-640", "RFB-640"])
def test_built_int8_has_the_interface_the_detector_expects(name: str) -> None:
    from ai_edge_litert.interpreter import Interpreter

    variant = load_manifest().variant(name)
    out = _built(name)
    interp = Interpreter(model_path=str(out / f"{name}-int8.tflite"))
    (inp,) = interp.get_input_details()
    assert inp["dtype"] == np.int8
    assert list(inp["shape"]) == [1, variant.height, variant.width, 3]
    assert inp["quantization"] == (pytest.approx(1 / 128), -1)
    # An int8 input spares the full-frame QUANTIZE (uint8 -> int8) a uint8 input would put first.
    ops = [op["op_name"] for op in interp._get_ops_details()]
    assert "QUANTIZE" not in ops and "DEQUANTIZE" not in ops, ops
    assert ops.count("CONV_2D") + ops.count("DEPTHWISE_CONV_2D") >= 40
    outputs = {int(o["shape"][-1]): o for o in interp.get_output_details()}
    assert sorted(outputs) == [2, 4]
    for dim, detail in outputs.items():
        assert list(detail["shape"]) == [1, variant.num_priors, dim]
        assert detail["dtype"] in (np.int8, np.uint8)
    scale, zero = outputs[2]["quantization"]
    qmax = np.iinfo(outputs[2]["dtype"]).max
    assert (qmax - zero) * scale >= 0.99  # a confident face's softmax score survives quantisation
    if name.endswith("-320"):
        assert (out / f"{name}-int8.tflite").stat().st_size <= MAX_320_INT8_BYTES


@pytest.mark.parametrize("name", ["slim-320", "RFB-320", "slim-640", "RFB-640"])
def test_build_info_records_the_inputs(name: str, faces_dir: Path) -> None:
    variant = load_manifest().variant(name)
    info = json.loads((_built(name) / "build-info.json").read_text())
    inputs = info["inputs"]
    assert inputs["weights_sha256"] == variant.weights_sha256
    assert inputs["input"] == [variant.width, variant.height]
    assert inputs["calibration_sha256"] == hash_images(list_images(faces_dir))
    assert inputs["tools"]["onnx2tf"] == "1.29.24"
    assert inputs["tools"]["torch"].startswith("2.13.0")
    assert {"tensorflow", "onnx", "numpy"} <= set(inputs["tools"])
    assert info["command"].startswith("faceagent") and "models build" in info["command"]
    for entry in info["files"].values():
        assert Path(entry["path"]).stat().st_size == entry["bytes"]


@pytest.mark.parametrize("name", ["slim-320", "RFB-320"])
def test_fp32_build_matches_upstream_onnx_and_int8_tracks_fp32(name: str, faces_dir: Path,
                                                               upstream_dir: Path) -> None:
    import onnxruntime as ort

    out = _built(name)
    frames = _photos(faces_dir, 320, 240)
    fp32 = _run_tflite(out / f"{name}-fp32.tflite", frames, normalise=True)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(upstream_dir / f"version-{name}_without_postprocessing.onnx"), options,
                                   providers=["CPUExecutionProvider"])
    for rgb, ours in zip(frames, fp32, strict=True):
        x = ((rgb.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
        ref_scores, ref_boxes = session.run(None, {session.get_inputs()[0].name: x})
        assert np.abs(ours[2] - ref_scores).max() < 1e-3
        assert np.abs(ours[4] - ref_boxes).max() < 1e-2
    int8_scores = _dequantised_scores(out / f"{name}-int8.tflite", frames)[..., 1].ravel()
    fp32_scores = np.stack([r[2] for r in fp32])[..., 1].ravel()
    cosine = float(int8_scores @ fp32_scores / np.linalg.norm(int8_scores) / np.linalg.norm(fp32_scores))
    assert cosine > 0.99


def _assert_fp32_matches_onnx(out_dir: Path, name: str, frames: list[np.ndarray]) -> None:
    """The FP32 TFLite computes what the ONNX we exported computes (odd feature maps included)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(out_dir / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    for rgb, ours in zip(frames, _run_tflite(out_dir / f"{name}-fp32.tflite", frames, normalise=True),
                         strict=True):
        x = ((rgb.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
        scores, boxes = session.run(None, {"input": x})
        assert np.abs(ours[2] - scores).max() < 1e-3
        assert np.abs(ours[4] - boxes).max() < 1e-2


@pytest.mark.slow
def test_rebuild_gives_the_same_outputs_and_sized_variants_build(tmp_path: Path, faces_dir: Path,
                                                                upstream_dir: Path) -> None:
    cache = tmp_path / "cache"
    proc = _faceagent("models", "build", "RFB-320", "RFB-320@480x360", "--from", str(upstream_dir),
                      cache=cache)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "[RFB-320] 5/5" in proc.stdout
    fresh = cache / "models" / "RFB-320" / "RFB-320-int8.tflite"
    frames = _photos(faces_dir, 320, 240)
    for ours, theirs in zip(_run_tflite(fresh, frames, normalise=False),
                            _run_tflite(_built("RFB-320") / "RFB-320-int8.tflite", frames, normalise=False),
                            strict=True):
        np.testing.assert_array_equal(ours[2], theirs[2])
        np.testing.assert_array_equal(ours[4], theirs[4])
    sized = cache / "models" / "RFB-320@480x360" / "RFB-320@480x360-int8.tflite"
    n = load_manifest().variant("RFB-320@480x360").num_priors
    (result,) = _run_tflite(sized, _photos(faces_dir, 480, 360)[:1], normalise=False)
    assert result[2].shape == (1, n, 2) and result[4].shape == (1, n, 4)
    _assert_fp32_matches_onnx(sized.parent, "RFB-320@480x360", _photos(faces_dir, 480, 360)[:4])
    # Same inputs again: a cache hit, nothing rewritten.
    mtime = fresh.stat().st_mtime_ns
    again = _faceagent("models", "build", "RFB-320", cache=cache)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "cache hit" in again.stdout and fresh.stat().st_mtime_ns == mtime
    listed = json.loads(_faceagent("models", "list", "--json", cache=cache).stdout)
    by_name = {e["name"]: e for e in listed}
    assert by_name["RFB-320@480x360"]["int8"] == str(sized)
    assert by_name["RFB-320@480x360"]["input"] == [480, 360]
    assert by_name["slim-320"]["int8"] is None and by_name["slim-320"]["fp32"] is None


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["models", "build", "RFB-999"], "unknown model variant"),
     (["models", "build", "RFB-320", "--calib", "/nonexistent/dir"], "calibration directory not found"),
     (["models", "build", "RFB-320", "--size", "12x12"], "out of range")],
)
def test_build_refuses_bad_input_in_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    proc = _faceagent(*args, cache=tmp_path / "cache")
    assert proc.returncode != 0
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "cache" / "models").exists()


def test_list_json_names_every_variant(tmp_path: Path) -> None:
    proc = _faceagent("models", "list", "--json", cache=tmp_path / "empty")
    entries = json.loads(proc.stdout)
    assert [e["name"] for e in entries] == ["slim-320", "RFB-320", "slim-640", "RFB-640"]
    assert all(e["int8"] is None and e["fp32"] is None for e in entries)
    assert entries[1]["input"] == [320, 240] and entries[3]["input"] == [640, 480]
    table = _faceagent("models", "list", cache=tmp_path / "empty").stdout
    assert "RFB-640" in table and "640x480" in table and "(not built)" in table
