"""Landmark error of detected faces: normalised mean error (NME) against labelled or reference points.

The normaliser is the size of the matched labelled (or reference) face, ``sqrt(w * h)`` of its
box: WIDER FACE faces are often in profile or tiny, where the inter-ocular distance collapses.
A prediction matches the labelled face it overlaps most (IoU >= 0.5), best score first, each
face at most once; only faces with all five points labelled count.

Labels follow the RetinaFace WIDER FACE layout: ``# <event>/<name>.jpg`` lines, then one face per
line, ``x y w h`` optionally followed by five ``x y visible`` triples (and a confidence); a
point of ``-1 -1`` is unlabelled. A line of four numbers has a box only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rpi_agent.domain import Detection
from rpi_agent.errors import DatasetError

MATCH_IOU = 0.5
NORMALISER = "sqrt(w*h) of the matched face box"
Key = tuple[str, str]
FaceArrays = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True, slots=True)
class LabelledFaces:
    """Faces of one image: ``boxes`` ``(G, 4)`` xyxy and ``points`` ``(G, 5, 2)`` (NaN where unlabelled)."""

    boxes: np.ndarray
    points: np.ndarray


@dataclass(frozen=True, slots=True)
class LandmarkError:
    """NME over matched faces.

    Attributes:
        nme: Mean over faces of the mean point distance divided by the face size; ``None``
            when no labelled face was matched.
        matched: Faces that were matched and counted.
        labelled: Faces with all five points labelled, over the images evaluated.
        normaliser: What the distances are divided by.
    """

    nme: float | None
    matched: int
    labelled: int
    normaliser: str = NORMALISER

    def to_dict(self) -> dict[str, object]:
        return {"nme": None if self.nme is None else round(self.nme, 5), "matched": self.matched,
                "labelled": self.labelled, "normaliser": self.normaliser}


def _parse_face(values: list[float]) -> tuple[list[float], list[list[float]]]:
    x, y, w, h = values[:4]
    points = [[np.nan, np.nan]] * 5
    if len(values) >= 4 + 15:
        triples = np.asarray(values[4:19], dtype=np.float64).reshape(5, 3)[:, :2]
        points = [[np.nan, np.nan] if (p < 0).all() else list(p) for p in triples]
    return [x, y, x + w, y + h], points


def read_labels(path: str | Path) -> dict[Key, LabelledFaces]:
    """Parse a RetinaFace-layout label file.

    Raises:
        DatasetError: The file is missing or a face line is malformed.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read landmark labels ({exc.strerror or exc})") from None
    faces: dict[Key, tuple[list[list[float]], list[list[list[float]]]]] = {}
    current: tuple[list[list[float]], list[list[list[float]]]] | None = None
    for number, line in enumerate(lines, start=1):
        if line.startswith("#"):
            event, _, name = line[1:].strip().rpartition("/")
            current = faces.setdefault((event, name.removesuffix(".jpg")), ([], []))
            continue
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            values = []
        if current is None or len(values) < 4:
            raise DatasetError(f"{path}:{number}: expected 'x y w h [landmarks]' after a '# event/name.jpg' line")
        box, points = _parse_face(values)
        current[0].append(box)
        current[1].append(points)
    return {key: LabelledFaces(np.asarray(b, np.float64).reshape(-1, 4), np.asarray(p, np.float64).reshape(-1, 5, 2))
            for key, (b, p) in faces.items()}


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(P, 4)`` x ``(G, 4)`` xyxy -> ``(P, G)`` IoU."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0.0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def image_errors(pred_boxes: np.ndarray, pred_points: np.ndarray, labels: LabelledFaces) -> np.ndarray:
    """Per matched face, the mean point distance over its size.

    Args:
        pred_boxes: ``(P, 4)`` xyxy, best first.
        pred_points: ``(P, 5, 2)``.
        labels: The image's labelled faces.

    Returns:
        ``(M,)`` float64 normalised errors of the matched, fully labelled faces.
    """
    complete = ~np.isnan(labels.points).any(axis=(1, 2))
    if pred_boxes.shape[0] == 0 or not complete.any():
        return np.empty(0)
    gt_boxes, gt_points = labels.boxes[complete], labels.points[complete]
    overlaps = _iou(pred_boxes, gt_boxes)
    taken = np.zeros(gt_boxes.shape[0], dtype=bool)
    errors = []
    for p in range(pred_boxes.shape[0]):
        row = np.where(taken, -1.0, overlaps[p])
        g = int(row.argmax())
        if row[g] < MATCH_IOU:
            continue
        taken[g] = True
        size = np.sqrt(np.prod(gt_boxes[g, 2:] - gt_boxes[g, :2]))
        errors.append(float(np.linalg.norm(pred_points[p] - gt_points[g], axis=1).mean() / max(size, 1e-6)))
    return np.asarray(errors)


def landmark_error(preds: dict[Key, FaceArrays], labels: dict[Key, LabelledFaces]) -> LandmarkError:
    """NME of predictions (from :func:`collect`, best first) over the labelled images they cover."""
    errors: list[np.ndarray] = []
    labelled = 0
    for key, (boxes, points, _scores) in preds.items():
        image = labels.get(key)
        if image is None:
            continue
        labelled += int((~np.isnan(image.points).any(axis=(1, 2))).sum())
        errors.append(image_errors(boxes, points, image))
    flat = np.concatenate(errors) if errors else np.empty(0)
    return LandmarkError(float(flat.mean()) if flat.size else None, int(flat.size), labelled)


REFERENCE_SCORE = 0.5


def as_labels(faces: dict[Key, FaceArrays], *, min_score: float = REFERENCE_SCORE) -> dict[Key, LabelledFaces]:
    """One model's confident faces as the labels for another (e.g. FP32 as the reference of INT8)."""
    return {key: LabelledFaces(boxes[scores >= min_score], points[scores >= min_score])
            for key, (boxes, points, scores) in faces.items()}


def collect(faces: list[Detection]) -> FaceArrays:
    """One image's faces as arrays: boxes ``(P, 4)`` xyxy, points ``(P, 5, 2)``, scores ``(P,)``."""
    with_points = [f for f in faces if f.landmarks is not None]
    boxes = np.asarray([f.box for f in with_points], np.float64).reshape(-1, 4)
    points = np.asarray([f.landmarks for f in with_points], np.float64).reshape(-1, 5, 2)
    return boxes, points, np.asarray([f.score for f in with_points], np.float64)
