"""INT8 builds find the same faces as upstream's FP32 model on the real photos."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.domain import Detection
from rpi_agent.evaluation.agreement import agreement_options, compare, compare_detectors, greedy_match
from rpi_agent.imaging.listing import iter_image_paths
from rpi_agent.paths import model_file

MIN_F1 = 0.95


def det(x: float, y: float, score: float, size: float = 10.0) -> Detection:
    return Detection((x, y, x + size, y + size), score)


def test_greedy_match_pairs_best_candidate_first() -> None:
    reference = [det(0, 0, 0.9), det(100, 100, 0.8)]
    # Both candidates overlap the first face; the higher-scored one takes it.
    candidate = [det(2, 0, 0.7), det(1, 0, 0.95), det(100, 101, 0.9)]
    pairs = greedy_match(reference, candidate, iou_threshold=0.5)
    assert sorted((r, c) for r, c, _ in pairs) == [(0, 1), (1, 2)]
    assert all(0.5 <= iou <= 1.0 for _, _, iou in pairs)


def test_compare_counts_only_confident_faces() -> None:
    reference = [det(0, 0, 0.9), det(50, 50, 0.65), det(200, 200, 0.3)]
    candidate = [det(0, 0, 0.91), det(50, 50, 0.55), det(300, 300, 0.7)]
    result = compare(reference, candidate, min_score=0.6)
    assert (result.matched, result.reference, result.candidate) == (1, 2, 2)
    assert result.f1 == pytest.approx(0.5)
    assert compare([], [], min_score=0.6).f1 == 1.0


@pytest.mark.parametrize("arch", ["RFB", "slim"])
def test_int8_agrees_with_upstream_fp32(arch: str, faces_dir: Path, upstream_dir: Path) -> None:
    int8 = model_file(f"{arch}-320", "int8")
    if not int8.is_file():
        pytest.fail(f"{int8} is not built: run `faceagent models build {arch}-320`")
    upstream = upstream_dir / f"version-{arch}-320_without_postprocessing.tflite"
    images = list(iter_image_paths([faces_dir]))
    result = compare_detectors(
        FaceDetector.from_model(upstream, options=agreement_options()),
        FaceDetector.from_model(int8, options=agreement_options()),
        images,
    )
    assert result.reference > 10 * len(images) // 2, "the photos hold many faces; too few were found"
    assert result.f1 >= MIN_F1, result.to_dict()


def test_agreement_cli(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from rpi_agent.cli import main

    assert main(["-q", "eval", "agreement", "--model", "slim-320", "--resize", "stretch", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["images"] == 24
    assert record["reference_model"].endswith("version-slim-320_without_postprocessing.tflite")
    assert record["f1"] == pytest.approx(2 * record["matched"] / (record["reference"] + record["candidate"]), abs=1e-4)
    # 640 variants have no upstream FP32 file to compare against by default.
    assert main(["-q", "eval", "agreement", "--model", "RFB-640"]) == 1
    assert "give --reference" in capsys.readouterr().err
