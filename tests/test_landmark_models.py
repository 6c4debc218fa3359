"""The landmark networks: manifest entries, our PyTorch definitions against the published weights,
and the built INT8/FP32 TFLite files (real build venv, real LiteRT runtime, the shared photos)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rpi_agent.detection.priors import PriorSpec, generate_priors
from rpi_agent.errors import ModelError
from rpi_agent.models import buildenv, load_manifest
from rpi_agent.paths import REPO_ROOT, model_file

LANDMARK_VARIANTS = ["slim-landmark-320", "slim-landmark-640", "RFB-landmark-320", "RFB-landmark-640",
                     "retinaface-mnet-320", "retinaface-mnet-640"]
MAX_INT8_BYTES = {"slim-landmark": 450 * 1024, "RFB-landmark": 450 * 1024, "retinaface-mnet0.25": 600 * 1024}
PINNED_COMMIT = "2b075657aef954b9426f938ac7fce100b6910fe6"


@pytest.fixture(scope="session")
def landmark_dir(shared: Path) -> Path:
    return shared / "models" / "landmark"


def _sums(folder: Path) -> dict[str, str]:
    lines = (folder / "SHA256SUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split() for line in lines)}


def test_landmark_variants_are_pinned_to_the_shared_checksums_and_upstream(landmark_dir: Path) -> None:
    manifest = load_manifest()
    sums = _sums(landmark_dir)
    assert [n for n in manifest.names() if manifest.variant(n).landmarks] == LANDMARK_VARIANTS
    for name in LANDMARK_VARIANTS:
        variant = manifest.variant(name)
        assert variant.weights_sha256 == sums[variant.weights], name
        assert (variant.mean, variant.std, variant.folded_mean_bgr) == (0.0, 1.0, (104.0, 117.0, 123.0))
        assert manifest.weights_url(variant.weights) == (
            f"https://raw.githubusercontent.com/biubug6/Face-Detector-1MB-with-landmark/{PINNED_COMMIT}/weights/"
            f"{variant.weights}")
    assert manifest.variant("RFB-landmark-320").weights == "RBF_Final.pth"  # upstream's spelling


def test_retinaface_priors_and_their_size_rule() -> None:
    manifest = load_manifest()
    priors = manifest.variant("retinaface-mnet-640").priors
    assert priors.min_boxes == ((10, 20), (32, 64), (128, 256)) and priors.strides == (8, 16, 32)
    assert not priors.clip and not manifest.variant("RFB-landmark-320").priors.clip
    for name in ("retinaface-mnet-320", "retinaface-mnet-640@640x640", "slim-landmark-320@333x251"):
        variant = manifest.variant(name)
        spec = PriorSpec(variant.width, variant.height, min_boxes=variant.priors.min_boxes,
                         strides=variant.priors.strides, clip=variant.priors.clip)
        assert generate_priors(spec).shape == (variant.num_priors, 4)
    with pytest.raises(ModelError, match=r"multiples of 32, e\.g\. 320x256"):
        manifest.variant("retinaface-mnet-320@320x240")


def test_unclipped_priors_keep_sides_beyond_the_input() -> None:
    spec = PriorSpec(320, 240, clip=False)
    priors = generate_priors(spec)
    assert priors[:, 3].max() == pytest.approx(256 / 240)
    assert generate_priors(PriorSpec(320, 240))[:, 3].max() == 1.0


def _build_python() -> Path:
    python = buildenv.venv_python()
    if not python.is_file():
        pytest.fail(f"build venv missing ({python}): run scripts/build_env.sh or `faceagent models build`")
    return python


@pytest.fixture(scope="module")
def verify_report(landmark_dir: Path, faces_dir: Path) -> dict[str, Any]:
    """Our landmark networks loaded with the published weights, computed in the build venv."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        [str(_build_python()), "-m", "rpi_agent.models.landmark_verify", "--weights", str(landmark_dir),
         "--images", str(faces_dir)], env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["slim-landmark", "RFB-landmark", "retinaface-mnet0.25"])
def test_weights_load_strictly_and_the_raw_pixel_wrapper_is_exact(verify_report: dict[str, Any], arch: str) -> None:
    report = verify_report[arch]
    assert report["strict"] and report["images"] == 24
    assert report["wrapper_max_abs_diff"] < 1e-3
    assert report["top_face_score"] > 0.99  # the photos hold confident faces: the weights are in use
    manifest = load_manifest()
    base = {"slim-landmark": "slim-landmark-640", "RFB-landmark": "RFB-landmark-640",
            "retinaface-mnet0.25": "retinaface-mnet-640"}[arch]
    for size, shapes in report["shapes"].items():
        n = manifest.variant(f"{base}@{size}").num_priors
        assert shapes == [[1, n, 2], [1, n, 4], [1, n, 10]], size


@pytest.mark.slow
@pytest.mark.parametrize("arch,blocks", [("slim-landmark", 12), ("RFB-landmark", 11), ("retinaface-mnet0.25", 13)])
def test_equalisation_keeps_the_function(verify_report: dict[str, Any], arch: str, blocks: int) -> None:
    entry = verify_report[arch]
    assert entry["equalized_blocks"] == blocks  # every depthwise-separable block of the network
    assert entry["equalize_max_abs_diff"] < 1e-3  # scores in [0, 1], offsets of a few units: float rounding only


@pytest.mark.slow
def test_another_networks_state_dict_is_refused(verify_report: dict[str, Any]) -> None:
    for arch in ("slim-landmark", "RFB-landmark", "retinaface-mnet0.25"):
        error = verify_report[arch]["foreign_error"]
        assert error is not None and error.startswith("Error(s) in loading state_dict"), arch


@pytest.mark.parametrize("name", LANDMARK_VARIANTS)
def test_built_int8_takes_raw_rgb_pixels_and_has_three_matching_outputs(name: str) -> None:
    from ai_edge_litert.interpreter import Interpreter

    variant = load_manifest().variant(name)
    path = model_file(name, "int8")
    if not path.is_file():
        pytest.fail(f"{path} is not built: run `faceagent models build {name}`")
    interp = Interpreter(model_path=str(path))
    (inp,) = interp.get_input_details()
    assert inp["dtype"] == np.int8 and list(inp["shape"]) == [1, variant.height, variant.width, 3]
    assert inp["quantization"] == (1.0, -128)  # raw pixels (the mean subtraction is in the graph), top bit flipped
    outputs = {int(o["shape"][-1]): o for o in interp.get_output_details()}
    assert sorted(outputs) == [2, 4, 10]
    for dim, detail in outputs.items():
        assert list(detail["shape"]) == [1, variant.num_priors, dim] and detail["dtype"] == np.int8
    assert path.stat().st_size <= MAX_INT8_BYTES[variant.arch]
    info = json.loads((path.parent / "build-info.json").read_text())
    assert info["inputs"]["landmarks"] and info["inputs"]["weights_sha256"] == variant.weights_sha256
    # Beside it, the FP32 network with a free input size, for upstream's protocol (--resize native).
    assert info["files"]["onnx_any_size"]["path"].endswith(f"{name}-any-size.onnx")


def test_fetch_refuses_a_landmark_weights_file_with_a_wrong_hash(tmp_path: Path, landmark_dir: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    data = bytearray((landmark_dir / "slim_Final.pth").read_bytes())
    data[100] ^= 0x01
    (folder / "slim_Final.pth").write_bytes(bytes(data))
    env = {k: v for k, v in os.environ.items() if k != "FACEAGENT_WEIGHTS_DIR"}
    env["FACEAGENT_CACHE_DIR"] = str(tmp_path / "cache")
    proc = subprocess.run([sys.executable, "-m", "rpi_agent", "-q", "models", "fetch", "--from", str(folder)],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "slim_Final.pth" in err[0] and "SHA-256 mismatch" in err[0]
    assert not (tmp_path / "cache" / "weights" / "slim_Final.pth").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["slim-landmark-320", "retinaface-mnet-320"])
def test_int8_within_001_of_fp32_on_val_dev(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The INT8 bound on every subset, for the two recipes it needed work for (docs/accuracy.md)."""
    from rpi_agent.cli import main

    ap = {}
    for model in (name, f"{name}:fp32"):
        assert main(["-q", "eval", "widerface", "--model", model, "--landmark-reference", "none", "--json"]) == 0
        ap[model] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ap"]
    for setting in ("easy", "medium", "hard"):
        assert ap[name][setting] == pytest.approx(ap[f"{name}:fp32"][setting], abs=0.01), setting
