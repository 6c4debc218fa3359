import numpy as np
import pytest

from rpi_agent.detection.decoder import (
    DecodeOptions,
    candidates_above,
    decode_boxes,
    hard_nms,
    postprocess,
)
from rpi_agent.detection.priors import PriorSpec, generate_priors
from rpi_agent.detection.quantization import Quantization, dequantize

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
