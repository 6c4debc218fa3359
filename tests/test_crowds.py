"""Crowds counted in full: the detect command and the daemon keep every face the evaluation keeps."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rpi_agent.config import parse_config
from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.domain import Detection
from rpi_agent.evaluation.agreement import compare
from rpi_agent.evaluation.runner import EVAL_OPTIONS
from rpi_agent.imaging.files import load_rgb
from rpi_agent.runtime.daemon import build_face_detector

CROWDS = ("17.jpg", "25.jpg")  # 240 and 250 faces at 0.3
THRESHOLDS = (0.3, 0.6)


def _evaluation_faces(model: Path, photo: Path, threshold: float) -> list[Detection]:
    options = dataclasses.replace(EVAL_OPTIONS, score_threshold=threshold)
    return FaceDetector.from_model(model, options=options).detect(load_rgb(photo)).faces


def _assert_same_faces(reference: list[Detection], found: list[Detection]) -> None:
    agreement = compare(reference, found, min_score=0.0, iou_threshold=0.9)
    assert agreement.f1 >= 0.99, agreement.as_dict()
    assert len(reference) > 100  # a crowd: more faces than a fixed cap of old would let through


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_detect_command_finds_every_face_of_a_crowd(built_model, faces_dir, threshold):
    model = built_model("RFB-320")
    photos = [faces_dir / name for name in CROWDS]
    proc = subprocess.run([sys.executable, "-m", "rpi_agent", "-q", "detect", "--json", "--model", str(model),
                           "--threshold", str(threshold), *map(str, photos)],
                          capture_output=True, text=True, timeout=120, check=True)
    results = {Path(r["image"]).name: r for r in map(json.loads, proc.stdout.splitlines())}
    for photo in photos:
        found = [Detection(tuple(f["box"]), f["score"]) for f in results[photo.name]["faces"]]
        _assert_same_faces(_evaluation_faces(model, photo, threshold), found)


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_daemon_detector_finds_every_face_of_a_crowd(built_model, faces_dir, threshold):
    model = built_model("RFB-320")
    config = parse_config({"detector": {"model": str(model), "threshold": threshold},
                           "cameras": [{"name": "door", "source": str(faces_dir)}]})
    detector = build_face_detector(config.detector)
    assert detector is not None
    for name in CROWDS:
        found = detector.detect(load_rgb(faces_dir / name)).faces
        _assert_same_faces(_evaluation_faces(model, faces_dir / name, threshold), found)
