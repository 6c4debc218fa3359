"""Threshold, decode and non-maximum suppression of raw detector outputs, in pure NumPy.

The order matters for speed: scores are thresholded first, in the model's own quantised
domain, so only the few surviving priors are dequantised and decoded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rpi_agent.detection.priors import PriorSpec
from rpi_agent.detection.quantization import FLOAT, Quantization, dequantize
from rpi_agent.geometry import self_iou


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """Post-processing settings.

    Attributes:
        score_threshold: Keep priors whose face score is strictly above this.
        iou_threshold: Hard NMS drops a box overlapping a kept one by more than this.
        top_k: Keep at most this many faces after NMS (``-1``: no limit).
        candidate_size: Only the best this many priors enter NMS (``-1``: all).
    """

    score_threshold: float = 0.6
    iou_threshold: float = 0.3
    top_k: int = -1
    candidate_size: int = 200

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in [0, 1), got {self.score_threshold}")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")


def candidates_above(scores: np.ndarray, quant: Quantization, threshold: float) -> np.ndarray:
    """Indices of scores strictly above ``threshold``, compared in the array's own domain.

    Args:
        scores: ``(N,)`` face scores, float or integer (quantised).
        quant: Quantisation of ``scores``.
        threshold: Real-valued threshold.

    Returns:
        ``(K,)`` int64 indices, ascending.
    """
    if quant.is_float:
        return np.flatnonzero(scores > threshold)
    # For integer q: scale * (q - zp) > t  <=>  q > floor(t / scale + zp).
    bound = math.floor(threshold / quant.scale + quant.zero_point)
    info = np.iinfo(scores.dtype)
    if bound >= info.max:
        return np.empty(0, dtype=np.int64)
    if bound < info.min:
        return np.arange(scores.shape[0], dtype=np.int64)
    return np.flatnonzero(scores > scores.dtype.type(bound))


def decode_boxes(loc: np.ndarray, priors: np.ndarray, spec: PriorSpec) -> np.ndarray:
    """Turn regression offsets into corner boxes.

    Args:
        loc: ``(K, 4)`` float32 offsets ``(dx, dy, dw, dh)``.
        priors: ``(K, 4)`` float32 priors ``(cx, cy, w, h)``, normalised.
        spec: Supplies the centre and size variances.

    Returns:
        ``(K, 4)`` float32 ``(x1, y1, x2, y2)`` normalised to the input size.
    """
    centers = priors[:, :2] + loc[:, :2] * np.float32(spec.center_variance) * priors[:, 2:]
    sizes = priors[:, 2:] * np.exp(loc[:, 2:] * np.float32(spec.size_variance))
    return np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)


def greedy_keep(boxes: np.ndarray, options: DecodeOptions) -> np.ndarray:
    """Greedy hard NMS over boxes already sorted best first.

    Args:
        boxes: ``(K, 4)`` float32 xyxy boxes, best first.
        options: IoU threshold and ``top_k``.

    Returns:
        ``(M,)`` int64 indices into ``boxes``, ascending (so still best first).
    """
    if boxes.shape[0] < 2:
        return np.arange(boxes.shape[0], dtype=np.int64)
    overlaps = self_iou(boxes) > options.iou_threshold
    suppressed = np.zeros(boxes.shape[0], dtype=bool)
    keep: list[int] = []
    for i in range(boxes.shape[0]):
        if suppressed[i]:
            continue
        keep.append(i)
        if 0 < options.top_k == len(keep):
            break
        suppressed |= overlaps[i]
    return np.asarray(keep, dtype=np.int64)


def best_first(scores: np.ndarray, options: DecodeOptions) -> np.ndarray:
    """Indices of the ``candidate_size`` best scores, best first; ties keep the lower index first."""
    order = np.argsort(-scores, kind="stable")
    return order[: options.candidate_size] if options.candidate_size > 0 else order


def hard_nms(boxes: np.ndarray, scores: np.ndarray, options: DecodeOptions) -> np.ndarray:
    """Greedy hard NMS; ties in score keep the lower prior index first (stable, deterministic).

    Args:
        boxes: ``(K, 4)`` float32 xyxy boxes.
        scores: ``(K,)`` float32 scores.
        options: IoU threshold, ``candidate_size`` and ``top_k``.

    Returns:
        ``(M,)`` int64 indices into ``boxes``, best first.
    """
    order = best_first(scores, options)
    return order[greedy_keep(boxes[order], options)]


def postprocess(
    scores: np.ndarray,
    loc: np.ndarray,
    priors: np.ndarray,
    spec: PriorSpec,
    *,
    score_quant: Quantization = FLOAT,
    loc_quant: Quantization = FLOAT,
    options: DecodeOptions,
) -> tuple[np.ndarray, np.ndarray]:
    """Threshold → sort → decode the best candidates → NMS.

    Args:
        scores: ``(N,)`` face-class scores (after softmax), float or quantised.
        loc: ``(N, 4)`` regression offsets, float or quantised.
        priors: ``(N, 4)`` ``(cx, cy, w, h)`` from :func:`rpi_agent.detection.priors.generate_priors`, normalised,
            or scaled to pixels (then the boxes come out in pixels too).
        spec: Prior layout (variances).
        score_quant: Quantisation of ``scores``.
        loc_quant: Quantisation of ``loc``.
        options: Thresholds and limits.

    Returns:
        ``(boxes, scores)``: ``(M, 4)`` float32 xyxy in the priors' units and ``(M,)`` float32, best first.
    """
    idx = candidates_above(scores, score_quant, options.score_threshold)
    if idx.size == 0:
        return np.empty((0, 4), np.float32), np.empty(0, np.float32)
    cand_scores = dequantize(scores[idx], score_quant)
    order = best_first(cand_scores, options)
    idx, cand_scores = idx[order], cand_scores[order]
    cand_boxes = decode_boxes(dequantize(loc[idx], loc_quant), priors[idx], spec)
    keep = greedy_keep(cand_boxes, options)
    return cand_boxes[keep], cand_scores[keep]
