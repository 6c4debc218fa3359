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
from rpi_agent.geometry import IOU_EPS, box_areas, box_rows, overlap_matrix


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
        box_voting: When above 0, each kept box becomes the score-weighted mean of the candidates
            overlapping it by at least this IoU (box voting); 0 keeps the boxes as decoded.
    """

    score_threshold: float = 0.6
    iou_threshold: float = 0.3
    top_k: int = -1
    candidate_size: int = -1
    box_voting: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in [0, 1), got {self.score_threshold}")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if not 0.0 <= self.box_voting <= 1.0:
            raise ValueError(f"box_voting must be in [0, 1], got {self.box_voting}")


def quantized_bound(dtype: np.dtype, quant: Quantization, threshold: float) -> int | None:
    """The integer ``b`` with ``real(q) > threshold  <=>  q > b`` for scores of an integer ``dtype``.

    For integer q: ``scale * (q - zp) > t  <=>  q > floor(t / scale + zp)``. ``None`` when every
    value passes; a bound at or above the dtype's maximum means none does.
    """
    bound = math.floor(threshold / quant.scale + quant.zero_point)
    return None if bound < np.iinfo(dtype).min else bound


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
    bound = quantized_bound(scores.dtype, quant, threshold)
    if bound is None:
        return np.arange(scores.shape[0], dtype=np.int64)
    if bound >= np.iinfo(scores.dtype).max:
        return np.empty(0, dtype=np.int64)
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


def decode_landmarks(offsets: np.ndarray, priors: np.ndarray, spec: PriorSpec) -> np.ndarray:
    """Turn landmark offsets into points: prior centre + offset x centre variance x prior size.

    Args:
        offsets: ``(K, 10)`` float32 ``(dx1, dy1, ..., dx5, dy5)``.
        priors: ``(K, 4)`` float32 priors ``(cx, cy, w, h)``, normalised or in pixels.
        spec: Supplies the centre variance.

    Returns:
        ``(K, 5, 2)`` float32 ``(x, y)`` points in the priors' units.
    """
    points = offsets.reshape(-1, 5, 2) * np.float32(spec.center_variance)
    return priors[:, None, :2] + points * priors[:, None, 2:]


NMS_BLOCK = 256
# Beyond this many box pairs that overlap in x, the sweep's pair arrays would outgrow the blocks.
MAX_SWEEP_PAIRS = 4 * NMS_BLOCK * NMS_BLOCK
# Below this many candidates one IoU block is cheaper than the sweep's fixed cost: a dozen more
# kinds of NumPy call, each of which costs microseconds when it runs right after an inference has
# evicted its code and data (x86: 33-66 us vs 104-149 us for 13-79 candidates, even at 90-130).
SWEEP_FROM = 100

def _sweep(rows: np.ndarray, area: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`overlapping_pairs` on ``(4, K)`` box rows and their areas."""
    count = rows.shape[1]
    x1 = rows[0]
    by_x1 = np.argsort(x1, kind="stable")
    # Box at sorted position s overlaps in x the next counts[s] boxes in that order, those whose
    # left edge lies before its right edge.
    after = np.arange(1, count + 1)
    counts = np.searchsorted(x1.take(by_x1), rows[2].take(by_x1), side="left")
    counts -= after
    np.maximum(counts, 0, out=counts)
    total = int(counts.sum())
    if total > MAX_SWEEP_PAIRS:
        return None
    # Pair k of position s (k counted over all pairs) has partner k + (s + 1 - pairs before s).
    shift = after - np.cumsum(counts)
    shift += counts
    second = np.arange(total)
    second += np.repeat(shift, counts)
    i, j = by_x1.take(np.repeat(after - 1, counts)), by_x1.take(second)
    first_rows, second_rows = rows.take(i, axis=1), rows.take(j, axis=1)
    corner = np.minimum(first_rows[2:], second_rows[2:])
    corner -= np.maximum(first_rows[:2], second_rows[:2])
    np.maximum(corner, 0.0, out=corner)
    inter = corner[0] * corner[1]
    union = area.take(i)
    union += area.take(j)
    union -= inter
    union += IOU_EPS
    inter /= union
    hit = inter > iou_threshold
    i, j = i[hit], j[hit]
    return np.minimum(i, j), np.maximum(i, j)


def overlapping_pairs(boxes: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Index pairs ``(a, b)``, ``a < b``, of boxes whose IoU exceeds ``iou_threshold``.

    A sweep over the boxes sorted by left edge lists only the pairs that overlap in x, so the work
    follows the number of neighbours rather than the square of the candidates (250 faces of a
    crowd have ~20 x-neighbours each, not 250). The IoU is computed exactly as :func:`iou_outer`.

    Args:
        boxes: ``(K, 4)`` xyxy boxes.
        iou_threshold: Pairs above it are listed.

    Returns:
        Two ``(P,)`` int64 arrays, or ``None`` when more than :data:`MAX_SWEEP_PAIRS` boxes overlap in x.
    """
    rows = box_rows(boxes)
    return _sweep(rows, box_areas(rows), iou_threshold)


def _resolve_greedy(count: int, earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
    """Which of ``count`` best-first boxes greedy NMS keeps, given its overlapping pairs.

    A box is kept once every earlier box overlapping it is dropped, and dropped once one of them is
    kept. Each pass drops the later box of every pair whose earlier box is kept, forgets the pairs
    that touch a dropped box, and keeps every box no remaining pair blocks: at least the first
    undecided box, in practice nearly all (a pass per link in the longest chain of overlaps).
    """
    kept = np.ones(count, dtype=bool)
    kept[later] = False
    dropped = np.zeros(count, dtype=bool)
    while earlier.size:
        dropped[later[kept.take(earlier)]] = True
        live = dropped.take(earlier)
        live |= dropped.take(later)
        np.logical_not(live, out=live)
        earlier, later = earlier[live], later[live]
        kept = ~dropped
        kept[later] = False
    return kept


def _bits(flags: np.ndarray) -> int:
    """``(K,)`` bool as an integer whose bit ``k`` is ``flags[k]``."""
    return int.from_bytes(np.packbits(flags, bitorder="little").tobytes(), "little")


def _greedy_one_block(rows: np.ndarray, iou_threshold: float, top_k: int) -> np.ndarray:
    """:func:`_greedy_blocks` for candidates that fit one block, in as little code as it takes.

    Right after an inference every line and NumPy call here runs with cold caches, where it
    costs several times its warm time: so no slicing and no per-block bookkeeping.
    """
    area = box_areas(rows)
    packed = np.packbits(overlap_matrix(rows, area, rows, area, iou_threshold), axis=1, bitorder="little")
    masks, width = packed.tobytes(), packed.shape[1]
    keep: list[int] = []
    alive = (1 << rows.shape[1]) - 1
    while alive:
        lowest = alive & -alive
        i = lowest.bit_length() - 1
        keep.append(i)
        alive &= ~(int.from_bytes(masks[i * width:(i + 1) * width], "little") | lowest)
    return np.array(keep[:top_k] if top_k > 0 else keep, dtype=np.int64)


def _greedy_blocks(rows: np.ndarray, area: np.ndarray, options: DecodeOptions) -> list[int]:
    """Greedy NMS in blocks of :data:`NMS_BLOCK` rows of IoU, for few candidates or too dense to sweep.

    Each block's overlaps become one integer of bits per box, so the pass visits the kept boxes
    only: the next kept box is the lowest bit still set, and it clears the bits of the boxes it
    suppresses.
    """
    keep: list[int] = []
    count = rows.shape[1]
    for start in range(0, count, NMS_BLOCK):
        stop = min(start + NMS_BLOCK, count)
        block, block_area = (rows, area) if count <= NMS_BLOCK else (rows[:, start:stop], area[start:stop])
        alive = (1 << (stop - start)) - 1
        if keep:
            earlier = overlap_matrix(rows.take(keep, axis=1), area.take(keep), block, block_area,
                                     options.iou_threshold)
            alive &= ~_bits(np.any(earlier, axis=0))
        packed = np.packbits(overlap_matrix(block, block_area, block, block_area, options.iou_threshold),
                             axis=1, bitorder="little")
        masks, width = packed.tobytes(), packed.shape[1]
        while alive:
            lowest = alive & -alive
            i = lowest.bit_length() - 1
            keep.append(start + i)
            if len(keep) == options.top_k:
                return keep
            alive &= ~(int.from_bytes(masks[i * width:(i + 1) * width], "little") | lowest)
    return keep


def vote(kept: np.ndarray, boxes: np.ndarray, scores: np.ndarray, min_iou: float) -> np.ndarray:
    """Box voting: each kept box as the score-weighted mean of the candidates that overlap it.

    Args:
        kept: ``(M,)`` indices of the kept boxes into ``boxes``.
        boxes: ``(K, 4)`` float32 xyxy candidates.
        scores: ``(K,)`` float32 candidate scores.
        min_iou: Candidates overlapping a kept box by at least this IoU vote for it.

    Returns:
        ``(M, 4)`` float32 voted boxes (a kept box always votes for itself).
    """
    a, b = boxes[kept], boxes
    inter_w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    inter_h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = inter_w * inter_h
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    iou = inter / (area[kept][:, None] + area[None, :] - inter + np.float32(1e-5))
    weights = np.where(iou >= min_iou, scores[None, :], np.float32(0.0))
    weights[np.arange(kept.size), kept] = scores[kept]
    return ((weights @ b) / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def greedy_keep(boxes: np.ndarray, options: DecodeOptions) -> np.ndarray:
    """Greedy hard NMS over boxes already sorted best first, at a cost that follows the overlaps.

    Few candidates go through one IoU block resolved bit by bit (:func:`_greedy_blocks`); many
    through a sweep that lists only the overlapping pairs (:func:`overlapping_pairs`), resolved a
    pass at a time (:func:`_resolve_greedy`), so a crowd of 250 faces costs about twice what 60
    candidates do; candidates too dense to sweep go through blocks of bounded memory (a full matrix
    of 4420 priors would take 78 MB). All give exactly the result of one greedy pass.

    Args:
        boxes: ``(K, 4)`` float32 xyxy boxes, best first.
        options: IoU threshold and ``top_k``.

    Returns:
        ``(M,)`` int64 indices into ``boxes``, ascending (so still best first).
    """
    return greedy_keep_rows(box_rows(boxes), options)


def greedy_keep_rows(rows: np.ndarray, options: DecodeOptions) -> np.ndarray:
    """:func:`greedy_keep` on ``(4, K)`` float32 box rows ``x1, y1, x2, y2``."""
    count = rows.shape[1]
    if count < 2:
        return np.arange(count, dtype=np.int64)
    if count < SWEEP_FROM and count <= NMS_BLOCK:
        return _greedy_one_block(rows, options.iou_threshold, options.top_k)
    area = box_areas(rows)
    pairs = _sweep(rows, area, options.iou_threshold) if count >= SWEEP_FROM else None
    if pairs is None:
        return np.array(_greedy_blocks(rows, area, options), dtype=np.int64)
    keep = np.flatnonzero(_resolve_greedy(count, *pairs))
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
    boxes, kept_scores, _ = postprocess_indexed(scores, loc, priors, spec, score_quant=score_quant,
                                                loc_quant=loc_quant, options=options)
    return boxes, kept_scores


def postprocess_indexed(
    scores: np.ndarray,
    loc: np.ndarray,
    priors: np.ndarray,
    spec: PriorSpec,
    *,
    score_quant: Quantization = FLOAT,
    loc_quant: Quantization = FLOAT,
    options: DecodeOptions,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`postprocess`, also returning which prior each kept face came from.

    Returns:
        ``(boxes, scores, prior_index)``: as :func:`postprocess` plus ``(M,)`` int64 rows of the
        network output, so per-prior extras (landmarks) are decoded for the survivors only.
    """
    idx = candidates_above(scores, score_quant, options.score_threshold)
    if idx.size == 0:
        return np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty(0, np.int64)
    cand_scores = dequantize(scores[idx], score_quant)
    order = best_first(cand_scores, options)
    idx, cand_scores = idx[order], cand_scores[order]
    cand_boxes = decode_boxes(dequantize(loc[idx], loc_quant), priors[idx], spec)
    keep = greedy_keep(cand_boxes, options)
    kept_boxes = vote(keep, cand_boxes, cand_scores, options.box_voting) if options.box_voting else cand_boxes[keep]
    return kept_boxes, cand_scores[keep], idx[keep]
