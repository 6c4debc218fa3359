"""Do a kmodel's faces (and landmarks) agree with the Pi's INT8 TFLite on the same camera frames?

Both kmodel builds (V4 in nncase v0.2's runtime, V5 in nncase 1.9's simulator) are checked the
same way: the 24 photos as the K210 camera sees a scene (the whole view in a 320x240 frame), the
kmodel's outputs decoded by the Pi's own NumPy decoder, the faces matched one to one against the
INT8 TFLite's (IoU ≥ 0.5, score ≥ 0.6, best kmodel score first). For landmark models the five
points of every matched face are compared too: the mean distance of the kmodel's points from the
TFLite's, divided by the size of the TFLite's face (the square root of its box area).

A model whose input is taller than the camera frame (RetinaFace at 320x256: its feature pyramid
needs sides that are multiples of 32) gets the frame in its top-left corner and the rest filled
with the training mean, as the Pi's ``corner`` resize does; the TFLite is given the same.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rpi_agent.domain import Detection
from rpi_agent.errors import ModelError

AGREEMENT_THRESHOLD = 0.6  # score threshold of the agreement check
AGREEMENT_IOU = 0.5
MIN_F1 = 0.95
CAMERA = (320, 240)  # the K210 sensor's QVGA frame (width, height)


@dataclass(frozen=True, slots=True)
class KpuOutputs:
    """Raw outputs of a batch of frames, per prior.

    Attributes:
        scores: ``(N, P, 2)`` float32 softmax scores (background, face).
        loc: ``(N, P, 4)`` float32 box offsets.
        landmarks: ``(N, P, 10)`` float32 landmark offsets, or ``None`` for a model without them.
    """

    scores: np.ndarray
    loc: np.ndarray
    landmarks: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class Agreement:
    """Faces of a kmodel against the INT8 TFLite on the same frames.

    Attributes:
        kmodel_faces / tflite_faces / matched: Face counts (score ≥ 0.6) and one-to-one matches (IoU ≥ 0.5).
        f1: ``2 * matched / (kmodel_faces + tflite_faces)``.
        landmark_faces: Matched faces whose landmarks were compared (0 for a model without).
        landmark_nme: Mean over those faces of the mean point distance / sqrt(TFLite box area).
        landmark_nme_max: The worst face's figure.
    """

    kmodel_faces: int
    tflite_faces: int
    matched: int
    f1: float
    landmark_faces: int = 0
    landmark_nme: float | None = None
    landmark_nme_max: float | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def split_outputs(outputs: list[np.ndarray]) -> KpuOutputs:
    """Scores, boxes and (if present) landmarks from flat per-frame outputs, whatever their order.

    Args:
        outputs: Two or three ``(N, elements)`` arrays: 2, 4 (and 10) values per prior.

    Raises:
        ModelError: The outputs are not such maps.
    """
    if len(outputs) not in (2, 3):
        raise ModelError(f"expected 2 or 3 outputs (scores, boxes, landmarks), got {len(outputs)}")
    n = outputs[0].shape[0]
    per = sorted(outputs, key=lambda a: a.shape[1])
    priors, rest = divmod(per[0].shape[1], 2)
    wanted = [2, 4, 10][: len(outputs)]
    if rest or priors == 0 or [a.shape[1] for a in per] != [k * priors for k in wanted]:
        raise ModelError(f"outputs of {[a.shape[1] for a in outputs]} values are not scores x2, boxes x4"
                         + (" and landmarks x10" if len(outputs) == 3 else ""))
    landmarks = per[2].reshape(n, priors, 10) if len(per) == 3 else None
    return KpuOutputs(per[0].reshape(n, priors, 2), per[1].reshape(n, priors, 4), landmarks)


def kmodel_inputs(frames: np.ndarray, width: int, height: int, pad: int | tuple[int, int, int]) -> np.ndarray:
    """Camera frames placed in a (possibly taller) model input: top-left, the rest ``pad``.

    Returns:
        ``(N, height, width, 3)`` uint8.
    """
    from rpi_agent.detection.preprocess import fit_to_input

    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([fit_to_input(f, width, height, "corner", pad)[0] for f in frames])


def _landmark_errors(points: np.ndarray, reference: tuple[Detection, ...] | list[Detection],
                     pairs: list[tuple[int, int, float]]) -> list[float]:
    errors = []
    for ci, ri, _ in pairs:
        ref_points, box = reference[ri].landmarks, reference[ri].box
        if ref_points is None:
            continue
        size = float(np.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 1e-6)))
        dist = np.linalg.norm(points[ci] - np.asarray(ref_points, dtype=np.float32), axis=1)
        errors.append(float(dist.mean()) / size)
    return errors


def compare(int8: Path, outputs: KpuOutputs, frames: np.ndarray) -> Agreement:
    """Decode the kmodel's outputs with the Pi's decoder and match them with the INT8 TFLite's faces.

    Args:
        int8: The INT8 TFLite of the same network.
        outputs: The kmodel's outputs for ``frames`` (placed in its input by :func:`kmodel_inputs`).
        frames: ``(N, 240, 320, 3)`` uint8 RGB camera frames.

    Raises:
        ModelError: The TFLite is missing, or its prior layout does not fit the kmodel's outputs.
    """
    from rpi_agent.detection.decoder import DecodeOptions, decode_landmarks, postprocess_indexed
    from rpi_agent.detection.face_detector import FaceDetector
    from rpi_agent.geometry import iou_matrix, match_by_score

    if not int8.is_file():
        raise ModelError(f"{int8} missing: run `faceagent models build {int8.parent.name}` first")
    options = DecodeOptions(score_threshold=AGREEMENT_THRESHOLD)
    # At the camera's size any resize is the identity; a taller input gets the frame at its corner.
    detector = FaceDetector.from_model(int8, resize="corner", options=options)
    spec, priors = detector.spec, detector.priors
    if priors.shape[0] != outputs.scores.shape[1]:
        raise ModelError(f"{int8}: {priors.shape[0]} priors, the kmodel outputs {outputs.scores.shape[1]} rows")
    scale = np.array([spec.width, spec.height], dtype=np.float32)
    mine = theirs = tp = 0
    errors: list[float] = []
    for i, frame in enumerate(frames):
        boxes, best, kept = postprocess_indexed(outputs.scores[i][:, 1], outputs.loc[i], priors, spec,
                                                options=options)
        reference = detector.detect(frame).faces
        ref_boxes = np.array([d.box for d in reference], dtype=np.float32).reshape(-1, 4)
        pairs = match_by_score(iou_matrix(boxes * np.tile(scale, 2), ref_boxes), best, AGREEMENT_IOU)
        mine += len(boxes)
        theirs += len(reference)
        tp += len(pairs)
        if outputs.landmarks is not None and len(pairs):
            points = decode_landmarks(outputs.landmarks[i][kept], priors[kept], spec) * scale
            errors.extend(_landmark_errors(points, reference, pairs))
    f1 = 2 * tp / (mine + theirs) if mine + theirs else 1.0
    return Agreement(mine, theirs, tp, round(f1, 4), len(errors),
                     round(float(np.mean(errors)), 4) if errors else None,
                     round(float(np.max(errors)), 4) if errors else None)


def record(agreement: Agreement, *, runtime: str, frames: int) -> dict[str, object]:
    """The ``agreement_vs_int8_tflite`` entry of build-info.json."""
    entry: dict[str, object] = {"runtime": runtime, "frames": frames, "score_threshold": AGREEMENT_THRESHOLD,
                                "iou": AGREEMENT_IOU}
    entry.update(agreement.to_dict())
    return entry
