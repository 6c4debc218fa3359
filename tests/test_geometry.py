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
