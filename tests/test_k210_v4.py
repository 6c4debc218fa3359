"""kmodel V4 built here by ncc v0.2.0-beta2 (from source) and checked in nncase v0.2's own runtime.

``ncc infer`` is v0.2's interpreter with its host simulation of the KPU, the runtime MaixPy and
CanMV carry; the faces it finds on the shared photos are compared with the Pi's INT8 TFLite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from k210_support import camera_frames, kmodel, kmodel_v4, photos, simulated_v4_raw

from rpi_agent.errors import ModelError
from rpi_agent.k210 import kmodel as kmodel_format
from rpi_agent.k210.ncc import default_ncc, infer
from rpi_agent.k210.v4 import MIN_F1, agreement, split_outputs

NAME = "slim-320"


def test_the_v4_file_is_what_the_v0_2_runtime_reads() -> None:
    path = kmodel_v4(NAME)
    info = kmodel_format.read(path)
    assert info.version == 4 and info.expected_bytes == info.size_bytes == path.stat().st_size
    assert info.inputs[0].shape == (1, 3, 240, 320) and info.inputs[0].datatype_bytes == 1  # raw camera bytes
    assert sorted(t.size for t in info.outputs) == [4420 * 2 * 4, 4420 * 4 * 4]  # float32 scores, boxes
    assert 0 < info.main_mem_bytes < 6 * 1024 * 1024  # the K210 has 6 MB of main RAM


def test_build_info_records_size_memory_and_agreement_with_the_int8_tflite() -> None:
    path = kmodel_v4(NAME)
    entry = json.loads((path.parent / "build-info.json").read_text())["kmodel_v4"]
    info = kmodel_format.read(path)
    assert entry["kmodel_version"] == 4 and entry["size_bytes"] == path.stat().st_size
    assert entry["main_mem_bytes"] == info.main_mem_bytes
    assert entry["tool"].startswith("ncc v0.2.0-beta2") and entry["source"].endswith("-fp32.tflite")
    check = entry["agreement_vs_int8_tflite"]
    assert check["frames"] == len(photos()[0]) and check["iou"] == 0.5 and check["score_threshold"] == 0.6
    assert check["tflite_faces"] > 100 and check["f1"] >= MIN_F1


def test_agreement_recomputed_from_the_runtime_matches_build_info() -> None:
    path = kmodel_v4(NAME)
    result = agreement(NAME, path, camera_frames(), ncc=default_ncc())
    print(f"{NAME} V4: kmodel {result.kmodel_faces} faces, INT8 TFLite {result.tflite_faces}, "
          f"matched {result.matched}, F1 {result.f1}")
    assert result.f1 >= MIN_F1
    recorded = json.loads((path.parent / "build-info.json").read_text())["kmodel_v4"]["agreement_vs_int8_tflite"]
    assert recorded["f1"] == result.f1  # the runtime is deterministic


def test_runtime_outputs_are_softmax_scores_and_box_offsets() -> None:
    out = split_outputs(list(simulated_v4_raw(NAME)))
    scores, loc = out.scores, out.loc
    assert out.landmarks is None
    assert scores.shape == (len(photos()[0]), 4420, 2) and loc.shape[1:] == (4420, 4)
    assert abs(float(scores.sum(axis=2).mean()) - 1.0) < 0.02
    assert float(scores[..., 1].max()) > 0.9


def test_the_v0_2_runtime_path_refuses_a_v5_file_and_a_truncated_v4(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"kmodel V5, not V4"):
        infer(default_ncc(), kmodel(NAME), camera_frames()[:1])
    data = kmodel_v4(NAME).read_bytes()
    cut = tmp_path / "cut.kmodel"
    cut.write_bytes(data[: len(data) - 100])
    with pytest.raises(ModelError, match=rf"truncated kmodel V4: {len(data) - 100} bytes of {len(data)}"):
        infer(default_ncc(), cut, camera_frames()[:1])
    with pytest.raises(ModelError, match="not a kmodel"):
        kmodel_format.parse(b"\x89PNG" + bytes(60))


def test_only_the_last_bodys_unwritten_padding_is_completed() -> None:
    # ncc pads every node body to 8 bytes by seeking, so the last body's padding is never written
    # when the file ends there; up to 7 missing bytes at an 8-byte boundary are that, no more.
    data = kmodel_v4(NAME).read_bytes()
    assert len(data) % 8 == 0 and kmodel_format.missing_padding(data) == 0
    for cut in range(1, 8):
        assert kmodel_format.missing_padding(data[:-cut]) == cut
    assert kmodel_format.missing_padding(data[:-8]) == 0  # a whole 8 bytes: truncated, refused
    assert kmodel_format.missing_padding(kmodel(NAME).read_bytes()) == 0  # V5: not ncc v0.2's


def test_the_op_split_is_read_from_the_node_table() -> None:
    info = kmodel_format.read(kmodel_v4(NAME))
    split = info.op_split()
    assert split["kpu"]["KPUConv2D"] == 42  # every convolution of slim-320
    assert sum(split["kpu"].values()) + sum(split["cpu"].values()) == info.nodes
    assert not any(op.endswith("Conv2D") for op in split["cpu"])


def _faceagent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rpi_agent", *args], capture_output=True, text=True, check=False)


def test_cli_builds_v4_with_the_ncc_built_from_source(tmp_path: Path) -> None:
    proc = _faceagent("k210", "build", NAME, "--kmodel", "4", "--out", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["kmodel_version"] == 4 and kmodel_format.read(Path(result["path"])).version == 4
    assert "agreement_vs_int8_tflite" in json.loads((tmp_path / "build-info.json").read_text())["kmodel_v4"]


def test_cli_refuses_an_onnx_source_for_v4_in_one_line(tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not really")
    proc = _faceagent("k210", "build", NAME, "--kmodel", "4", "--source", str(onnx), "--out", str(tmp_path))
    assert proc.returncode == 1 and "reads TFLite (and Caffe) only" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
