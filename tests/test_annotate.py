"""Annotated images stay readable in a crowd: labels never cover a face or each other (real detector, 26.jpg)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.imaging.annotate import FONT_SCALE_MIN, box_thickness, draw_faces, layout_labels
from rpi_agent.imaging.files import load_rgb


@pytest.fixture(scope="module")
def detector(built_model) -> FaceDetector:
    return FaceDetector.from_model(built_model("RFB-320"))


def overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_crowd_labels_leave_every_face_visible(detector, faces_dir):
    rgb = load_rgb(faces_dir / "26.jpg")
    faces = detector.detect(rgb).faces
    assert len(faces) > 40  # the crowd photo
    height, width = rgb.shape[:2]
    labels = layout_labels(faces, width, height)
    boxes = [tuple(round(v) for v in f.box) for f in faces]
    placed = [label for label in labels if label is not None]
    assert len(placed) >= 0.9 * len(faces), f"{len(placed)} of {len(faces)} faces labelled"
    for k, label in enumerate(placed):
        assert not any(overlaps(label.rect, box) for box in boxes), label
        assert not any(overlaps(label.rect, other.rect) for other in placed[k + 1:]), label
        (_, text_h), _ = cv2.getTextSize(label.text, cv2.FONT_HERSHEY_SIMPLEX, label.scale, label.thickness)
        assert label.scale >= FONT_SCALE_MIN and text_h >= 6, label
    for face, label in zip(faces, labels, strict=True):
        if label is not None:
            assert label.text == f"{face.score:.2f}"

    # Inside every box the picture is untouched: no label, no other face's line lies on a face.
    drawn = draw_faces(rgb, faces)
    inset = box_thickness(width, height) + 1
    untouched = 0
    for x1, y1, x2, y2 in boxes:
        inner = (slice(max(0, y1 + inset), y2 - inset), slice(max(0, x1 + inset), x2 - inset))
        others = [b for b in boxes if b != (x1, y1, x2, y2) and overlaps(b, (x1, y1, x2, y2))]
        if not others:  # boxes of two overlapping detections may cross each other's lines
            assert np.array_equal(drawn[inner], rgb[inner]), (x1, y1, x2, y2)
            untouched += 1
    assert untouched >= 0.9 * len(boxes)


def test_a_large_face_gets_a_larger_label(detector, faces_dir):
    crowd = load_rgb(faces_dir / "26.jpg")
    crowd_labels = [lb for lb in layout_labels(detector.detect(crowd).faces, crowd.shape[1], crowd.shape[0]) if lb]
    single = load_rgb(faces_dir / "5.jpg")
    single_faces = detector.detect(single).faces
    single_labels = [lb for lb in layout_labels(single_faces, single.shape[1], single.shape[0]) if lb]
    assert single_labels and len(single_labels) == len(single_faces)
    assert min(lb.scale for lb in single_labels) > max(lb.scale for lb in crowd_labels)
