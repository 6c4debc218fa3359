"""`faceagent bench` runs every engine on real photos and reports a complete, consistent record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rpi_agent.cli import main
from rpi_agent.paths import model_file

INT8_320_MAX_BYTES = 450 * 1024


@pytest.fixture()
def two_photos(faces_dir: Path, tmp_path: Path) -> Path:
    for path in sorted(faces_dir.glob("*.jpg"))[:2]:
        (tmp_path / path.name).symlink_to(path)
    return tmp_path


@pytest.mark.parametrize("name", ["RFB-320", "slim-320"])
def test_bench_json(name: str, two_photos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not model_file(name).is_file():
        pytest.fail(f"{name} is not built: run `faceagent models build {name}`")
    assert main(["-q", "bench", "--model", name, "--images", str(two_photos), "--rounds", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["environment"]["images"] == 2
    (record,) = report["variants"]
    assert record["name"] == name and record["samples"] == 2
    medians = record["median_ms"]
    assert set(medians) == {"int8", "int8_alone", "fp32_tflite", "onnxruntime_fp32"}
    assert set(medians["int8"]) == set(medians["int8_alone"]) == {"preprocess", "inference", "decode"}
    assert all(v > 0 for stages in medians.values() for v in stages.values())
    ratios = record["ratios"]
    assert ratios["decode_vs_inference"] == pytest.approx(
        medians["int8_alone"]["decode"] / medians["int8_alone"]["inference"], rel=0.01)
    steps = record["int8_decode_steps_ms"]
    assert {"threshold", "sort_dequantize", "decode_boxes", "nms", "output"} <= set(steps)
    assert steps["candidates"] >= steps["faces"] > 0
    assert record["file_bytes"]["int8"] == model_file(name).stat().st_size <= INT8_320_MAX_BYTES


def test_bench_unbuilt_model_is_one_line(two_photos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "bench", "--model", "no-such-model", "--images", str(two_photos)]) == 1
    err = capsys.readouterr().err.strip()
    assert "no-such-model" in err and len(err.splitlines()) == 1
