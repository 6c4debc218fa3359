"""Upstream's own WIDER FACE protocol for the landmark networks (``eval widerface --resize native``):
the any-size FP32 ONNX of the real builds in onnxruntime, the real val_dev images and ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rpi_agent.cli import main
from rpi_agent.detection.decoder import DecodeOptions
from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.domain import Detection
from rpi_agent.evaluation.native import NativeSizeDetector, any_size_onnx
from rpi_agent.evaluation.submission import to_xywh
from rpi_agent.imaging.files import load_rgb
from rpi_agent.paths import model_file

# Upstream's code and settings on val_dev, long side 320 (../shared/README.md): easy, medium, hard.
UPSTREAM_320 = {"slim-landmark-320": (0.781, 0.652, 0.314), "RFB-landmark-320": (0.793, 0.673, 0.329),
                "retinaface-mnet-320": (0.788, 0.647, 0.331)}


def _native(name: str) -> NativeSizeDetector:
    fp32 = model_file(name, "fp32")
    fixed = FaceDetector.from_model(fp32)
    return NativeSizeDetector(any_size_onnx(fp32), fixed.layout, max(fixed.detector.input_size),
                              DecodeOptions(score_threshold=0.5, iou_threshold=0.4))


@pytest.mark.parametrize("name", ["slim-landmark-320", "retinaface-mnet-320"])
def test_any_size_onnx_runs_each_photo_at_its_own_size(name: str, faces_dir: Path) -> None:
    detector = _native(name)
    photo = sorted(faces_dir.glob("*.jpg"))[0]
    rgb = load_rgb(photo)
    net_in, scale = detector.fit(rgb)
    # Upstream's sizes: round(w * f) x round(h * f), long side exactly 320, nothing padded.
    assert max(net_in.shape[2:]) == 320 and scale == pytest.approx(320 / max(rgb.shape[:2]))
    assert net_in.shape[2:] == (round(rgb.shape[0] * scale), round(rgb.shape[1] * scale))
    faces = detector.detect(rgb).faces
    assert faces, f"no face above 0.5 in {photo.name}"
    x1, y1, x2, y2 = faces[0].box
    assert 0 <= x1 < x2 <= rgb.shape[1] * 1.05 and 0 <= y1 < y2 <= rgb.shape[0] * 1.05  # frame pixels


def test_truncated_rows_are_upstreams_int_casts() -> None:
    faces = [Detection((10.7, 20.2, 30.1, 41.9), 0.98765), Detection((-0.6, 5.5, 9.4, 6.0), 0.5)]
    np.testing.assert_array_equal(to_xywh(faces, truncate=True), [[10, 20, 20, 21, 0.988], [0, 5, 9, 1, 0.5]])
    np.testing.assert_array_equal(to_xywh(faces)[0], [10, 20, 20, 22, 0.988])  # Ultra-Light's: outward


@pytest.mark.parametrize("model,message", [("slim-landmark-320", "give NAME:fp32"),
                                           ("RFB-320:fp32", "Ultra-Light models have none")])
def test_native_refuses_what_has_no_any_size_network(model: str, message: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "widerface", "--model", model, "--resize", "native"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(UPSTREAM_320))
def test_native_protocol_reproduces_upstream_on_val_dev(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The proof that our definitions are right: upstream's figures within 0.005 on every subset."""
    assert main(["-q", "eval", "widerface", "--model", f"{name}:fp32", "--resize", "native", "--json"]) == 0
    ap = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ap"]
    for setting, reference in zip(("easy", "medium", "hard"), UPSTREAM_320[name], strict=True):
        assert ap[setting] == pytest.approx(reference, abs=0.005), setting
