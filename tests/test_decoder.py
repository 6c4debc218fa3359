import numpy as np
import pytest
from nms_support import greedy_reference

from rpi_agent.detection import decoder
from rpi_agent.detection.decoder import (
    NMS_BLOCK,
    DecodeOptions,
    candidates_above,
    decode_boxes,
    greedy_keep,
    hard_nms,
    postprocess,
)
from rpi_agent.detection.priors import PriorSpec, generate_priors
from rpi_agent.detection.quantization import Quantization, dequantize
from rpi_agent.geometry import iou_outer

SPEC = PriorSpec(320, 240)


def test_zero_offsets_decode_to_the_prior():
    priors = np.array([[0.5, 0.5, 0.2, 0.4]], np.float32)
    boxes = decode_boxes(np.zeros((1, 4), np.float32), priors, SPEC)
    np.testing.assert_allclose(boxes, [[0.4, 0.3, 0.6, 0.7]], atol=1e-6)


def test_offsets_use_the_variances():
    priors = np.array([[0.5, 0.5, 0.2, 0.4]], np.float32)
    # dx = 1 moves the centre by 0.1 * w = 0.02; dw = 5*ln 2 doubles the width (0.2 * 5 ln2 = ln 2).
    loc = np.array([[1.0, 0.0, 5 * np.log(2.0), 0.0]], np.float32)
    boxes = decode_boxes(loc, priors, SPEC)
    np.testing.assert_allclose(boxes, [[0.52 - 0.2, 0.3, 0.52 + 0.2, 0.7]], atol=1e-6)


def test_hard_nms_keeps_best_and_drops_overlaps():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 9]], np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.85], np.float32)
    keep = hard_nms(boxes, scores, DecodeOptions(iou_threshold=0.3))
    assert keep.tolist() == [1, 2]


def test_hard_nms_ties_are_deterministic_and_limits_apply():
    boxes = np.array([[0, 0, 1, 1], [5, 5, 6, 6], [9, 9, 10, 10]], np.float32)
    scores = np.array([0.5, 0.5, 0.5], np.float32)
    assert hard_nms(boxes, scores, DecodeOptions()).tolist() == [0, 1, 2]
    assert hard_nms(boxes, scores, DecodeOptions(top_k=2)).tolist() == [0, 1]
    assert hard_nms(boxes, scores, DecodeOptions(candidate_size=1)).tolist() == [0]


@pytest.mark.parametrize("dtype,zero_point", [(np.int8, -128), (np.uint8, 0), (np.int8, 5)])
def test_threshold_in_quantised_domain_equals_float_threshold(dtype, zero_point):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype)
    q = rng.integers(info.min, info.max + 1, size=5000).astype(dtype)
    quant = Quantization(1 / 256, zero_point)
    real = dequantize(q, quant)
    for threshold in (0.0, 0.1, 0.5, 0.6, 0.7, 0.99, 1 / 256 * 100):
        expected = np.flatnonzero(real > threshold)
        np.testing.assert_array_equal(candidates_above(q, quant, threshold), expected)


def test_postprocess_quantised_matches_float():
    rng = np.random.default_rng(1)
    priors = generate_priors(SPEC)
    n = priors.shape[0]
    score_q = Quantization(1 / 256, -128)
    loc_q = Quantization(0.05, 3)
    scores = rng.integers(-128, 128, n).astype(np.int8)
    loc = rng.integers(-128, 128, (n, 4)).astype(np.int8)
    opts = DecodeOptions(score_threshold=0.9, candidate_size=-1)
    b1, s1 = postprocess(scores, loc, priors, SPEC, score_quant=score_q, loc_quant=loc_q, options=opts)
    b2, s2 = postprocess(dequantize(scores, score_q), dequantize(loc, loc_q), priors, SPEC, options=opts)
    assert b1.shape[0] > 5
    np.testing.assert_allclose(b1, b2, atol=1e-6)
    np.testing.assert_allclose(s1, s2)
    assert np.all(np.diff(s1) <= 0)


def test_postprocess_no_face():
    priors = generate_priors(SPEC)
    boxes, scores = postprocess(
        np.zeros(priors.shape[0], np.float32), np.zeros_like(priors), priors, SPEC, options=DecodeOptions()
    )
    assert boxes.shape == (0, 4) and scores.shape == (0,)


def test_bad_options_rejected():
    with pytest.raises(ValueError):
        DecodeOptions(score_threshold=1.5)
    with pytest.raises(ValueError):
        DecodeOptions(iou_threshold=0.0)


@pytest.mark.parametrize("sweep", [True, False], ids=["sweep", "blocks"])
@pytest.mark.parametrize("count", [40, NMS_BLOCK, NMS_BLOCK + 1, 3 * NMS_BLOCK + 17])
def test_nms_is_one_greedy_pass(count, sweep, monkeypatch):
    if sweep:
        monkeypatch.setattr(decoder, "SWEEP_FROM", 2)
    else:  # candidates too dense to sweep go through IoU blocks
        monkeypatch.setattr(decoder, "MAX_SWEEP_PAIRS", 0)
    rng = np.random.default_rng(count)
    # Clusters of jittered boxes, as around real faces, so blocks suppress each other's boxes.
    centres = rng.uniform(0, 300, (max(count // 6, 1), 2))[rng.integers(0, max(count // 6, 1), count)]
    centres += rng.normal(0, 4, centres.shape)
    sizes = rng.uniform(8, 40, (count, 1))
    boxes = np.hstack([centres - sizes / 2, centres + sizes / 2]).astype(np.float32)
    keep = greedy_keep(boxes, DecodeOptions(iou_threshold=0.3))
    assert keep.tolist() == greedy_reference(boxes, 0.3)
    assert 1 < keep.size < count  # overlaps were found and some boxes survived
    limited = greedy_keep(boxes, DecodeOptions(iou_threshold=0.3, top_k=keep.size - 1))
    assert limited.tolist() == keep.tolist()[:-1]


def test_sweep_lists_exactly_the_overlapping_pairs():
    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 200, (300, 2))
    boxes = np.hstack([xy, xy + rng.uniform(5, 30, (300, 2))]).astype(np.float32)
    pairs = decoder.overlapping_pairs(boxes, 0.1)
    assert pairs is not None
    upper = np.triu(iou_outer(boxes) > 0.1, k=1)
    assert sorted(zip(*(p.tolist() for p in pairs), strict=True)) == sorted(zip(*np.nonzero(upper), strict=True))
    assert 0 < len(pairs[0]) < 300 * 299 // 20


def test_no_candidate_limit_by_default():
    assert DecodeOptions().candidate_size == -1 and DecodeOptions().top_k == -1
