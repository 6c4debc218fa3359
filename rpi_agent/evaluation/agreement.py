"""How well two detectors agree: greedy box matching, precision/recall/F1 of one against the other.

Used to check that an INT8 build finds the same faces as the FP32 model it came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rpi_agent.detection.decoder import DecodeOptions
from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.domain import Detection
from rpi_agent.geometry import iou_matrix, match_by_score
from rpi_agent.imaging.files import load_rgb

AGREEMENT_IOU = 0.5
AGREEMENT_SCORE = 0.6


@dataclass(slots=True)
class Agreement:
    """Counts of a candidate detector's faces against a reference detector's.

    Attributes:
        matched: Candidate faces paired with a reference face.
        reference: Reference faces in total.
        candidate: Candidate faces in total.
        ious: IoU of every matched pair.
    """

    matched: int = 0
    reference: int = 0
    candidate: int = 0
    ious: list[float] = field(default_factory=list)

    def add(self, other: Agreement) -> None:
        """Accumulate another image's counts."""
        self.matched += other.matched
        self.reference += other.reference
        self.candidate += other.candidate
        self.ious.extend(other.ious)

    @property
    def precision(self) -> float:
        return self.matched / self.candidate if self.candidate else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.reference if self.reference else 1.0

    @property
    def f1(self) -> float:
        total = self.reference + self.candidate
        return 2.0 * self.matched / total if total else 1.0

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            "f1": round(self.f1, 4), "precision": round(self.precision, 4), "recall": round(self.recall, 4),
            "matched": self.matched, "reference": self.reference, "candidate": self.candidate,
            "mean_iou": round(float(np.mean(self.ious)), 4) if self.ious else None,
        }


def greedy_match(
    reference: Sequence[Detection], candidate: Sequence[Detection], *, iou_threshold: float = AGREEMENT_IOU
) -> list[tuple[int, int, float]]:
    """Pair candidate faces, best score first, each with its best still-free reference face.

    Returns:
        ``(reference_index, candidate_index, iou)`` for every pair with IoU ≥ ``iou_threshold``.
    """
    if not reference or not candidate:
        return []
    iou = iou_matrix([d.box for d in candidate], [d.box for d in reference])
    pairs = match_by_score(iou, np.asarray([d.score for d in candidate]), iou_threshold)
    return [(ri, ci, value) for ci, ri, value in pairs]


def compare(
    reference: Sequence[Detection],
    candidate: Sequence[Detection],
    *,
    min_score: float = AGREEMENT_SCORE,
    iou_threshold: float = AGREEMENT_IOU,
) -> Agreement:
    """Agreement of one image's detections, counting only faces scored ≥ ``min_score``."""
    ref = [d for d in reference if d.score >= min_score]
    cand = [d for d in candidate if d.score >= min_score]
    pairs = greedy_match(ref, cand, iou_threshold=iou_threshold)
    return Agreement(len(pairs), len(ref), len(cand), [p[2] for p in pairs])


def agreement_options(min_score: float = AGREEMENT_SCORE) -> DecodeOptions:
    """Decode settings that keep every face scored ≥ ``min_score`` (the decoder keeps ``> t``)."""
    return DecodeOptions(score_threshold=float(np.nextafter(min_score, 0.0)))


def compare_detectors(
    reference: FaceDetector,
    candidate: FaceDetector,
    images: Iterable[Path],
    *,
    min_score: float = AGREEMENT_SCORE,
    iou_threshold: float = AGREEMENT_IOU,
) -> Agreement:
    """Run both detectors on every image and accumulate their agreement."""
    total = Agreement()
    for path in images:
        rgb = load_rgb(path)
        total.add(compare(reference.detect(rgb).faces, candidate.detect(rgb).faces,
                          min_score=min_score, iou_threshold=iou_threshold))
    return total
