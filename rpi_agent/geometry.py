"""Box geometry shared by the decoder, the tracker and the evaluation: IoU and greedy matching.

Boxes are pixel ``xyxy`` rows in continuous coordinates (a box from 0 to 10 is 10 wide). The
WIDER FACE protocol's inclusive-pixel (+1) IoU is deliberately not here: it belongs to that
protocol alone (:func:`rpi_agent.evaluation.widerface.box_overlaps`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

IOU_EPS = np.float32(1e-5)
"""Added to every union in the NMS IoU: keeps the IoU of empty boxes at 0."""


def iou_matrix(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Intersection over union of every pair of boxes from two sets.

    Args:
        a: ``(M, 4)`` xyxy boxes (anything array-like; reshaped to rows of 4).
        b: ``(N, 4)`` xyxy boxes.

    Returns:
        ``(M, N)`` float64 IoU in [0, 1]; 0 where both boxes are empty.

    Example:
        >>> iou_matrix([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30]]).round(3).tolist()
        [[0.333, 0.0]]
    """
    # Outer products of 1-D coordinate rows: fewer, cheaper NumPy calls than broadcasting (M, N, 2) blocks.
    x1, y1, x2, y2 = np.asarray(a, dtype=np.float64).reshape(-1, 4).T
    u1, v1, u2, v2 = np.asarray(b, dtype=np.float64).reshape(-1, 4).T
    width = np.minimum.outer(x2, u2) - np.maximum.outer(x1, u1)
    np.maximum(width, 0.0, out=width)
    height = np.minimum.outer(y2, v2) - np.maximum.outer(y1, v1)
    np.maximum(height, 0.0, out=height)
    inter = width * height
    area = np.maximum(x2 - x1, 0.0) * np.maximum(y2 - y1, 0.0)
    other = np.maximum(u2 - u1, 0.0) * np.maximum(v2 - v1, 0.0)
    union = np.add.outer(area, other) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou_outer(boxes: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
    """IoU of every pair, fast enough for NMS over hundreds of candidates.

    Args:
        boxes: ``(K, 4)`` xyxy boxes.
        others: ``(L, 4)`` xyxy boxes; default ``boxes`` themselves.

    Returns:
        ``(K, L)`` float32 IoU (a tiny epsilon in the union keeps empty boxes at 0).
    """
    rows = box_rows(boxes)
    other_rows = rows if others is None else box_rows(others)
    area = box_areas(rows)
    return _iou_of_rows(rows, area, other_rows, area if others is None else box_areas(other_rows))


def box_rows(boxes: np.ndarray) -> np.ndarray:
    """``(K, 4)`` xyxy boxes as ``(4, K)`` contiguous float32 rows ``x1, y1, x2, y2``."""
    return np.ascontiguousarray(boxes.T, dtype=np.float32)


def box_areas(rows: np.ndarray) -> np.ndarray:
    """``(K,)`` float32 areas of ``(4, K)`` box rows, 0 for empty boxes."""
    x1, y1, x2, y2 = rows
    return np.maximum(x2 - x1, 0.0) * np.maximum(y2 - y1, 0.0)  # type: ignore[no-any-return]


def overlap_matrix(rows: np.ndarray, area: np.ndarray, other_rows: np.ndarray, other_area: np.ndarray,
                   iou_threshold: float) -> np.ndarray:
    """``(K, L)`` bool: IoU above ``iou_threshold``, computed as :func:`iou_outer`.

    Args:
        rows: ``(4, K)`` float32 box rows; ``area``: their ``(K,)`` areas (:func:`box_areas`).
        other_rows: ``(4, L)`` float32 box rows; ``other_area``: their ``(L,)`` areas.
        iou_threshold: Pairs above it are ``True``.
    """
    return _iou_of_rows(rows, area, other_rows, other_area) > iou_threshold  # type: ignore[no-any-return]


def _iou_of_rows(rows: np.ndarray, area: np.ndarray, other_rows: np.ndarray, other_area: np.ndarray) -> np.ndarray:
    """``(K, L)`` float32 IoU of ``(4, K)`` and ``(4, L)`` box rows with their areas."""
    # Outer products of 1-D rows: a (2, K, L) block for x and y together makes half the calls but
    # runs the general broadcasting code, slower right after an inference has evicted it.
    x1, y1, x2, y2 = rows
    u1, v1, u2, v2 = other_rows
    inter = np.minimum.outer(x2, u2)
    inter -= np.maximum.outer(x1, u1)
    np.maximum(inter, 0.0, out=inter)
    height = np.minimum.outer(y2, v2)
    height -= np.maximum.outer(y1, v1)
    np.maximum(height, 0.0, out=height)
    inter *= height
    union = np.add.outer(area, other_area)
    union -= inter
    union += IOU_EPS
    inter /= union
    return inter


def match_best_pairs(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs ``(row, col)`` taken best IoU first, each row and column once, IoU ≥ ``threshold``.

    What a tracker wants: the closest overlaps win, whatever the scores. Ties keep the lower
    row, then the lower column (stable sort), so results are deterministic.

    Args:
        iou: ``(M, N)`` IoU matrix.
        threshold: Lowest IoU that makes a pair.
    """
    rows, cols = np.nonzero(iou >= threshold)  # only the pairs that can match are sorted
    order = np.argsort(-iou[rows, cols], kind="stable")
    rows_used: set[int] = set()
    cols_used: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for row, col in zip(rows[order].tolist(), cols[order].tolist(), strict=True):
        if row in rows_used or col in cols_used:
            continue
        rows_used.add(row)
        cols_used.add(col)
        pairs.append((row, col))
    return pairs


def match_by_score(iou: np.ndarray, scores: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """Candidates best score first, each paired with its best still-free reference.

    What detection metrics want (as in the PASCAL/WIDER matching): a confident candidate is
    matched before a weak one.

    Args:
        iou: ``(C, R)`` IoU of C candidates against R references.
        scores: ``(C,)`` candidate scores.
        threshold: Lowest IoU that makes a pair.

    Returns:
        ``(candidate_index, reference_index, iou)`` for every pair made.
    """
    if iou.size == 0:
        return []
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    taken = np.zeros(iou.shape[1], dtype=bool)
    pairs: list[tuple[int, int, float]] = []
    for ci in order:
        row = np.where(taken, -1.0, iou[ci])
        ri = int(row.argmax())
        if row[ri] >= threshold:
            taken[ri] = True
            pairs.append((int(ci), ri, float(row[ri])))
    return pairs
