"""IoU and greedy matching by hand: the one geometry the decoder, tracker and evaluation share."""

from __future__ import annotations

import numpy as np
import pytest

from rpi_agent.geometry import iou_matrix, iou_outer, match_best_pairs, match_by_score


def test_iou_matrix_by_hand() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=np.float32)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [0, 0, 5, 5], [20, 20, 30, 30]], dtype=np.float32)
    iou = iou_matrix(a, b)
    assert iou.shape == (2, 4)
    # Half overlap: 50 / (100 + 100 - 50); containment: 25 / 100; disjoint: 0.
    np.testing.assert_allclose(iou[0], [50 / 150, 1.0, 0.25, 0.0])
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 4)
    assert iou_matrix(np.array([[1, 1, 1, 1]]), np.array([[1, 1, 1, 1]]))[0, 0] == 0.0  # empty boxes


def test_match_best_pairs_takes_best_pairs_first() -> None:
    iou = np.array([[0.9, 0.8], [0.85, 0.1]])
    # (0,0) first; row 1's best column is taken and 0.1 is under the threshold.
    assert match_best_pairs(iou, 0.3) == [(0, 0)]
    assert match_best_pairs(iou, 0.05) == [(0, 0), (1, 1)]
    assert match_best_pairs(np.array([[0.5, 0.5]]), 0.3) == [(0, 0)]  # tie → lower column
    assert match_best_pairs(np.zeros((0, 3)), 0.3) == []


def test_iou_outer_known_values():
    boxes = np.array([[0, 0, 2, 2], [1, 1, 3, 3], [10, 10, 11, 11]], np.float32)
    iou = iou_outer(boxes)
    assert iou[0, 1] == pytest.approx(1 / 7, rel=1e-4)
    assert iou[0, 2] == 0.0
    assert iou[1, 1] == pytest.approx(1.0, rel=1e-4)


def test_iou_outer_agrees_with_iou_matrix() -> None:
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 100, (30, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 40, (30, 2))], axis=1).astype(np.float32)
    np.testing.assert_allclose(iou_outer(boxes), iou_matrix(boxes, boxes), atol=1e-5)


def test_match_by_score_serves_the_confident_candidate_first() -> None:
    # Both candidates overlap reference 0 best; the stronger one (index 1) gets it, the weaker
    # falls back to reference 1 if that is still close enough.
    iou = np.array([[0.9, 0.6], [0.7, 0.1]])
    assert match_by_score(iou, np.array([0.5, 0.9]), 0.5) == [(1, 0, 0.7), (0, 1, 0.6)]
    assert match_by_score(iou, np.array([0.5, 0.9]), 0.65) == [(1, 0, 0.7)]
    # The IoU-first rule pairs differently: (0, 0) is the closest overlap.
    assert match_best_pairs(iou, 0.5) == [(0, 0)]
    assert match_by_score(np.zeros((0, 2)), np.zeros(0), 0.5) == []


def _greedy_over_every_pair(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """The textbook search: every pair by falling IoU (ties row-major), each row and column once."""
    pairs: list[tuple[int, int]] = []
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        row, col = divmod(int(flat), iou.shape[1])
        if iou[row, col] < threshold:
            break
        if all(row != r and col != c for r, c in pairs):
            pairs.append((row, col))
    return pairs


def test_match_best_pairs_is_the_greedy_search_over_every_pair() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        rows, cols = rng.integers(0, 12, size=2)
        iou = rng.choice([0.0, 0.2, 0.35, 0.5, 0.8, 1.0], size=(rows, cols))  # repeated values: ties
        for threshold in (0.0, 0.3, 0.5):
            assert match_best_pairs(iou, threshold) == _greedy_over_every_pair(iou, threshold)


def test_iou_matrix_and_iou_outer_agree() -> None:
    rng = np.random.default_rng(3)
    corners = rng.uniform(0, 100, size=(40, 2))
    boxes = np.hstack([corners, corners + rng.uniform(0, 30, size=(40, 2))]).astype(np.float32)
    boxes[:3, 2:] = boxes[:3, :2]  # empty boxes
    np.testing.assert_allclose(iou_outer(boxes), iou_matrix(boxes, boxes), atol=1e-5)
    np.testing.assert_allclose(iou_outer(boxes[:7], boxes[7:]), iou_matrix(boxes[:7], boxes[7:]), atol=1e-5)


def test_iou_matrix_equals_the_broadcast_definition() -> None:
    rng = np.random.default_rng(3)
    for rows, cols in ((1, 1), (40, 14), (5, 0), (3, 7)):
        corner = rng.uniform(0, 600, (rows + cols, 2))
        size = rng.choice([0.0, 5.0, 20.0, 60.0], size=(rows + cols, 2))  # empty boxes too
        boxes = np.hstack([corner, corner + size])
        a, b = boxes[:rows], boxes[rows:]
        inter = np.clip(np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2]),
                        0.0, None).prod(axis=2)
        area_a, area_b = (np.clip(x[:, 2:] - x[:, :2], 0.0, None).prod(axis=1) for x in (a, b))
        union = area_a[:, None] + area_b[None, :] - inter
        expected = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        np.testing.assert_allclose(iou_matrix(a, b), expected, atol=1e-12)
