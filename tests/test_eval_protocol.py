"""The WIDER FACE protocol: vectorised code against a plain loop transcription of the official rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rpi_agent.domain import Detection
from rpi_agent.errors import DatasetError
from rpi_agent.evaluation.submission import read_prediction, read_predictions, to_xywh, write_prediction
from rpi_agent.evaluation.widerface import (
    ImageTruth,
    box_overlaps,
    evaluate,
    image_eval,
    img_pr_info,
    normalize_scores,
    thresholds,
    voc_ap,
)


def loop_image_eval(pred: np.ndarray, gt: np.ndarray, counted: np.ndarray, iou: float) -> tuple[np.ndarray, np.ndarray]:
    """The official per-prediction loop, written out plainly."""
    p = pred.copy()
    g = gt.copy()
    p[:, 2:4] += p[:, :2]
    g[:, 2:4] += g[:, :2]
    recall_list = np.zeros(g.shape[0])
    proposal = np.ones(p.shape[0])
    pred_recall = np.zeros(p.shape[0])
    for h in range(p.shape[0]):
        overlaps = np.zeros(g.shape[0])
        for k in range(g.shape[0]):
            iw = min(p[h, 2], g[k, 2]) - max(p[h, 0], g[k, 0]) + 1
            ih = min(p[h, 3], g[k, 3]) - max(p[h, 1], g[k, 1]) + 1
            if iw > 0 and ih > 0:
                union = (p[h, 2] - p[h, 0] + 1) * (p[h, 3] - p[h, 1] + 1) + (g[k, 2] - g[k, 0] + 1) * (
                    g[k, 3] - g[k, 1] + 1) - iw * ih
                overlaps[k] = iw * ih / union
        best = int(overlaps.argmax())
        if overlaps[best] >= iou:
            if not counted[best]:
                recall_list[best] = -1
                proposal[h] = -1
            elif recall_list[best] == 0:
                recall_list[best] = 1
        pred_recall[h] = np.count_nonzero(recall_list == 1)
    return pred_recall, proposal == 1


def loop_pr_info(scores: np.ndarray, proposal: np.ndarray, pred_recall: np.ndarray, num: int) -> np.ndarray:
    out = np.zeros((num, 2))
    for t in range(num):
        thresh = 1 - (t + 1) / num
        idx = np.where(scores >= thresh)[0]
        if len(idx):
            last = idx[-1]
            out[t] = [np.count_nonzero(proposal[: last + 1]), pred_recall[last]]
    return out


def random_image(rng: np.random.Generator, n_gt: int, n_pred: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gt = np.column_stack([rng.integers(0, 200, (n_gt, 2)), rng.integers(4, 60, (n_gt, 2))]).astype(float)
    # Predictions near faces (some duplicates, some strays), scores not sorted on purpose.
    src = gt[rng.integers(0, n_gt, n_pred)]
    jitter = rng.normal(0, 3, (n_pred, 4))
    pred = np.column_stack([src + jitter, rng.random(n_pred)])
    pred[rng.random(n_pred) < 0.2, :2] += 300
    return pred, gt, rng.random(n_gt) < 0.6


def test_box_overlaps_uses_inclusive_pixels() -> None:
    a = np.array([[0.0, 0.0, 9.0, 9.0]])
    b = np.array([[0.0, 0.0, 4.0, 9.0], [0.0, 0.0, 9.0, 9.0], [20.0, 20.0, 30.0, 30.0]])
    np.testing.assert_allclose(box_overlaps(a, b), [[0.5, 1.0, 0.0]])


def test_image_eval_duplicates_and_ignored_faces() -> None:
    gt = np.array([[10.0, 10.0, 20.0, 20.0], [100.0, 100.0, 20.0, 20.0]])
    counted = np.array([True, False])
    pred = np.array([
        [10, 10, 20, 20, 0.9],  # hits the counted face
        [11, 10, 20, 20, 0.8],  # duplicate: a proposal, recalls nothing new
        [100, 100, 20, 20, 0.7],  # hits the ignored face: no proposal
        [300, 300, 20, 20, 0.6],  # false positive
    ], dtype=float)
    recall, proposal = image_eval(pred, gt, counted, 0.5)
    np.testing.assert_array_equal(recall, [1, 1, 1, 1])
    np.testing.assert_array_equal(proposal, [True, True, False, True])


@pytest.mark.parametrize("seed", range(20))
def test_vectorised_matches_loop_transcription(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pred, gt, counted = random_image(rng, int(rng.integers(1, 15)), int(rng.integers(1, 40)))
    recall, proposal = image_eval(pred, gt, counted, 0.5)
    ref_recall, ref_proposal = loop_image_eval(pred, gt, counted, 0.5)
    np.testing.assert_array_equal(recall, ref_recall)
    np.testing.assert_array_equal(proposal, ref_proposal)
    expected = loop_pr_info(pred[:, 4], ref_proposal, ref_recall, 100)
    np.testing.assert_array_equal(img_pr_info(pred[:, 4], proposal, recall, thresholds(100)), expected)


def test_voc_ap() -> None:
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == pytest.approx(1.0)
    assert voc_ap(np.array([0.2, 0.4]), np.array([0.5, 0.5])) == pytest.approx(0.2)
    # The envelope lifts an earlier dip to the later, higher precision.
    assert voc_ap(np.array([0.5, 1.0]), np.array([0.2, 0.8])) == pytest.approx(0.8)


def test_normalize_scores_uses_global_bounds() -> None:
    preds = {("e", "a"): np.array([[0, 0, 1, 1, 0.2]]), ("e", "b"): np.array([[0, 0, 1, 1, 0.6], [0, 0, 1, 1, 0.4]])}
    normed = normalize_scores(preds)
    np.testing.assert_allclose(normed[("e", "a")][:, 4], [0.0])
    np.testing.assert_allclose(normed[("e", "b")][:, 4], [1.0, 0.5])
    assert preds[("e", "a")][0, 4] == 0.2  # inputs untouched


def synthetic_truth() -> dict[tuple[str, str], ImageTruth]:
    boxes = np.array([[10.0, 10.0, 30.0, 30.0], [100.0, 10.0, 30.0, 30.0], [200.0, 10.0, 8.0, 8.0]])
    keep = {"easy": np.array([0, 1]), "medium": np.array([0, 1]), "hard": np.array([0, 1, 2])}
    return {("ev", "img1"): ImageTruth(boxes, keep), ("ev", "img2"): ImageTruth(boxes[:2], {
        "easy": np.array([0]), "medium": np.array([0, 1]), "hard": np.array([0, 1])})}


def test_evaluate_perfect_and_partial() -> None:
    truth = synthetic_truth()
    perfect = {k: np.column_stack([t.boxes, np.linspace(0.9, 0.5, t.boxes.shape[0])]) for k, t in truth.items()}
    result = evaluate(perfect, truth)
    assert result.ap == pytest.approx({"easy": 1.0, "medium": 1.0, "hard": 1.0})
    assert result.faces == {"easy": 3, "medium": 4, "hard": 5}
    # Without the small face, hard recall stops at 4/5 while easy is untouched.
    partial = {k: v[v[:, 2] > 10] for k, v in perfect.items()}
    result = evaluate(partial, truth)
    assert result.ap["easy"] == pytest.approx(1.0)
    assert result.ap["hard"] == pytest.approx(0.8)


def test_evaluate_only_counts_covered_images() -> None:
    truth = synthetic_truth()
    one = {("ev", "img2"): np.column_stack([truth[("ev", "img2")].boxes, [0.9, 0.8]])}
    assert evaluate(one, truth).faces["hard"] == 2
    with pytest.raises(DatasetError, match="no prediction matches"):
        evaluate({("other", "x"): np.zeros((0, 5))}, truth)


def test_submission_round_trip(tmp_path: Path) -> None:
    faces = [Detection((10.4, 20.6, 50.2, 70.1), 0.98765), Detection((1.0, 2.0, 3.5, 4.0), 0.1)]
    rows = to_xywh(faces)
    np.testing.assert_allclose(rows, [[10, 20, 40, 50, 0.988], [1, 2, 3, 2, 0.1]])
    path = write_prediction(tmp_path, "0--Parade", "img", rows)
    assert path.read_text().splitlines()[:2] == ["img", "2"]
    np.testing.assert_allclose(read_prediction(path), rows)
    write_prediction(tmp_path, "0--Parade", "empty", to_xywh([]))
    assert read_predictions(tmp_path)[("0--Parade", "empty")].shape == (0, 5)


def test_malformed_submission(tmp_path: Path) -> None:
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "bad.txt").write_text("bad\n2\n1 2 3 4 0.5\n")
    with pytest.raises(DatasetError, match=r"expected 2 lines"):
        read_predictions(tmp_path)
    (tmp_path / "ev" / "bad.txt").write_text("bad\nmany\n")
    with pytest.raises(DatasetError, match="malformed"):
        read_predictions(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        read_predictions(tmp_path / "missing")
