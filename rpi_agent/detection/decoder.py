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
from rpi_agent.geometry import iou_outer


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """Post-processing settings.

    Attributes:
        score_threshold: Keep priors whose face score is strictly above this.
        iou_threshold: Hard NMS drops a box overlapping a kept one by more than this.
        top_k: Keep at most this many faces after NMS (``-1``: no limit).
        candidate_size: Only the best this many priors enter NMS (``-1``: all). No limit by
            default: a cap drops real faces in crowds (a photo with 250 faces has 350 priors above
            0.3), and :func:`greedy_keep` costs memory and time linear in the candidates per block.
    """

    score_threshold: float = 0.6
    iou_threshold: float = 0.3
    top_k: int = -1
    candidate_size: int = -1

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


NMS_BLOCK = 256
# Beyond this many box pairs that overlap in x, the sweep's pair arrays would outgrow the blocks.
MAX_SWEEP_PAIRS = 4 * NMS_BLOCK * NMS_BLOCK
# Below this many candidates one IoU block is cheaper than the sweep's fixed cost (x86: 17 vs 30 us
# at 27 candidates, 49 vs 35 us at 97 candidates with 48 faces).
SWEEP_FROM = 80


def overlapping_pairs(boxes: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Index pairs ``(a, b)``, ``a < b``, of boxes whose IoU exceeds ``iou_threshold``.

    A sweep over the boxes sorted by left edge lists only the pairs that overlap in x, so the work
    follows the number of neighbours rather than the square of the candidates (250 faces of a
    crowd have ~20 x-neighbours each, not 250). The IoU is computed exactly as :func:`iou_matrix`.

    Returns:
        The pairs, or ``None`` when more than :data:`MAX_SWEEP_PAIRS` boxes overlap in x.
    """
    x1, y1, x2, y2 = np.ascontiguousarray(boxes.T, dtype=np.float32)
    by_x1 = np.argsort(x1, kind="stable")
    sorted_x1 = x1[by_x1]
    ends = np.searchsorted(sorted_x1, x2[by_x1], side="left")
    counts = np.maximum(ends - np.arange(1, ends.size + 1), 0)
    total = int(counts.sum())
    if total > MAX_SWEEP_PAIRS:
        return None
    first = np.repeat(np.arange(ends.size), counts)
    second = first + 1 + np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    i, j = by_x1[first], by_x1[second]
    inter = np.minimum(x2[i], x2[j]) - np.maximum(x1[i], x1[j])
    np.maximum(inter, 0.0, out=inter)
    height = np.minimum(y2[i], y2[j]) - np.maximum(y1[i], y1[j])
    np.maximum(height, 0.0, out=height)
    inter *= height
    area = np.maximum(x2 - x1, 0.0) * np.maximum(y2 - y1, 0.0)
    union = area[i] + area[j]
    union -= inter
    union += np.float32(1e-5)
    hit = inter / union > iou_threshold
    i, j = i[hit], j[hit]
    return np.minimum(i, j), np.maximum(i, j)


def _resolve_greedy(count: int, earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
    """Which of ``count`` best-first boxes greedy NMS keeps, given its overlapping pairs.

    A box is kept once every earlier box overlapping it is dropped, and dropped once one of them is
    kept; each pass decides at least the first undecided box and in practice nearly all of them
    (a pass per link in the longest chain of overlaps, a handful on real frames).
    """
    kept = np.zeros(count, dtype=bool)
    dropped = np.zeros(count, dtype=bool)
    undecided = np.ones(count, dtype=bool)
    while undecided.any():
        dropped[later[kept[earlier]]] = True
        undecided &= ~dropped
        blockers = np.bincount(later[~dropped[earlier]], minlength=count)
        kept |= undecided & (blockers == 0)
        undecided &= ~kept
    return kept


def _greedy_blocks(boxes: np.ndarray, options: DecodeOptions) -> np.ndarray:
    """Greedy NMS in blocks of :data:`NMS_BLOCK` rows of IoU, for candidates too dense to sweep."""
    keep: list[int] = []
    for start in range(0, boxes.shape[0], NMS_BLOCK):
        block = boxes[start:start + NMS_BLOCK]
        suppressed = np.zeros(block.shape[0], dtype=bool)
        if keep:
            suppressed |= (iou_outer(boxes[keep], block) > options.iou_threshold).any(axis=0)
        overlaps = iou_outer(block) > options.iou_threshold
        for i in range(block.shape[0]):
            if suppressed[i]:
                continue
            keep.append(start + i)
            if 0 < options.top_k == len(keep):
                return np.asarray(keep, dtype=np.int64)
            suppressed |= overlaps[i]
    return np.asarray(keep, dtype=np.int64)


def greedy_keep(boxes: np.ndarray, options: DecodeOptions) -> np.ndarray:
    """Greedy hard NMS over boxes already sorted best first, at a cost that follows the overlaps.

    The overlapping pairs come from a sweep (:func:`overlapping_pairs`) and are resolved a pass at
    a time (:func:`_resolve_greedy`), so a crowd of 250 faces costs about twice what 60 candidates
    do; few candidates, or candidates too dense to sweep, go through IoU blocks of bounded memory
    (a full matrix of 4420 priors would take 78 MB). Both give exactly the result of one greedy pass.

    Args:
        boxes: ``(K, 4)`` float32 xyxy boxes, best first.
        options: IoU threshold and ``top_k``.

    Returns:
        ``(M,)`` int64 indices into ``boxes``, ascending (so still best first).
    """
    if boxes.shape[0] < 2:
        return np.arange(boxes.shape[0], dtype=np.int64)
    pairs = overlapping_pairs(boxes, options.iou_threshold) if boxes.shape[0] >= SWEEP_FROM else None
    if pairs is None:
        return _greedy_blocks(boxes, options)
    keep = np.flatnonzero(_resolve_greedy(boxes.shape[0], *pairs))
    return keep[: options.top_k] if options.top_k > 0 else keep


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
