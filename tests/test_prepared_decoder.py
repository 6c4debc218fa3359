"""The prepared decode stage gives exactly what the plain NumPy functions give, and its NMS is greedy NMS.

- NMS: generated boxes (clusters, empty, identical, huge, tiny), every path (one block, many
  blocks, sweep), any IoU threshold and ``top_k``, against a textbook greedy pass over the full
  IoU matrix.
- The prepared decoder against :func:`postprocess_indexed` + :func:`decode_landmarks` + the
  letterbox map: quantised outputs of both signednesses and any zero point, float outputs, every
  option, bit for bit; and on the real INT8 models' outputs for the 24 photos.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nms_support import greedy_reference

from rpi_agent.detection import decoder
from rpi_agent.detection.decoder import DecodeOptions, decode_landmarks, greedy_keep, postprocess_indexed
from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.detection.prepared import PreparedDecoder, build_detections
from rpi_agent.detection.preprocess import Letterbox, fit_to_input
from rpi_agent.detection.priors import PriorSpec, generate_priors
from rpi_agent.detection.quantization import FLOAT, Quantization, dequantize, dequantize_table
from rpi_agent.detection.tflite import RawOutput
from rpi_agent.domain import Detection
from rpi_agent.imaging.files import load_rgb
from rpi_agent.imaging.listing import iter_image_paths

BOUNDED = settings(max_examples=int(os.environ.get("FACEAGENT_PROPERTY_EXAMPLES", "150")), deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])
SPEC = PriorSpec(160, 120)


def _boxes(seed: int, count: int, clusters: int, spread: float) -> np.ndarray:
    """Jittered boxes around a few centres (as around faces), with some empty and duplicate ones."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 300, (clusters, 2))[rng.integers(0, clusters, count)]
    centres += rng.normal(0, spread, centres.shape)
    sizes = rng.uniform(0.5, 60, (count, 2)) * rng.choice([1.0, 1.0, 1.0, 0.0, 5.0], (count, 1))
    boxes = np.hstack([centres - sizes / 2, centres + sizes / 2]).astype(np.float32)
    if count > 3:
        boxes[count // 2] = boxes[1]  # an exact duplicate
    return boxes


@BOUNDED
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(0, 700), clusters=st.integers(1, 120),
       spread=st.floats(0.0, 20.0), iou=st.sampled_from([0.05, 0.3, 0.4, 0.5, 0.9, 1.0]),
       top_k=st.sampled_from([-1, 0, 1, 3, 50]), path=st.sampled_from(["auto", "sweep", "blocks"]))
def test_nms_equals_textbook_greedy_nms(*, seed: int, count: int, clusters: int, spread: float, iou: float,
                                        top_k: int, path: str) -> None:
    boxes = _boxes(seed, count, clusters, spread)
    saved = decoder.SWEEP_FROM, decoder.MAX_SWEEP_PAIRS
    try:
        if path == "sweep":
            decoder.SWEEP_FROM = 2
        elif path == "blocks":
            decoder.MAX_SWEEP_PAIRS = -1
        keep = greedy_keep(boxes, DecodeOptions(iou_threshold=iou, top_k=top_k))
    finally:
        decoder.SWEEP_FROM, decoder.MAX_SWEEP_PAIRS = saved
    assert keep.dtype == np.int64
    assert keep.tolist() == greedy_reference(boxes, iou, top_k)


def _plain_faces(raw: RawOutput, priors_px: np.ndarray, spec: PriorSpec, *, options: DecodeOptions,
                 mapping: Letterbox, width: int, height: int) -> list[Detection]:
    """The decode stage written with the plain functions, as the detector ran it before."""
    boxes, scores, kept = postprocess_indexed(raw.scores, raw.loc, priors_px, spec, score_quant=raw.score_quant,
                                              loc_quant=raw.loc_quant, options=options)
    boxes = mapping.to_frame(boxes)
    np.clip(boxes, 0.0, np.array([width, height] * 2, dtype=np.float32), out=boxes)
    points = None
    if raw.landmarks is not None:
        offsets = dequantize(raw.landmarks[kept], raw.landmark_quant)
        points = mapping.points_to_frame(decode_landmarks(offsets, priors_px[kept], spec)).tolist()
    return [Detection(tuple(b), s, None if points is None else tuple(map(tuple, points[i])))  # type: ignore[arg-type]
            for i, (b, s) in enumerate(zip(boxes.tolist(), scores.tolist(), strict=True))]


def _assert_identical(found: list[Detection], expected: list[Detection]) -> None:
    assert found == expected
    assert all(type(f) is Detection and type(f.box) is tuple and type(f.score) is float for f in found)


def _raw_output(rng: np.random.Generator, rows: int, dtype: str, zero_point: int, face_rate: float) -> RawOutput:
    if dtype == "float32":
        scores = np.where(rng.random(rows) < face_rate, rng.random(rows), 0.0).astype(np.float32)
        pairs = np.stack([1 - scores, scores], axis=1)
        return RawOutput(pairs[:, 1], rng.normal(0, 1, (rows, 4)).astype(np.float32), FLOAT, FLOAT,
                         rng.normal(0, 1, (rows, 10)).astype(np.float32), FLOAT, pairs)
    info = np.iinfo(dtype)
    pairs = rng.integers(info.min, info.max + 1, (rows, 2)).astype(dtype)
    pairs[rng.random(rows) >= face_rate, 1] = info.min
    quant = Quantization(1 / 256, zero_point)
    loc = rng.integers(info.min, info.max + 1, (rows, 4)).astype(dtype)
    marks = rng.integers(info.min, info.max + 1, (rows, 10)).astype(dtype)
    return RawOutput(pairs[:, 1], loc, quant, Quantization(0.04, zero_point // 2), marks,
                     Quantization(0.02, -zero_point // 3), pairs)


@BOUNDED
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from(["int8", "uint8", "float32"]),
       zero_point=st.integers(-128, 127), face_rate=st.sampled_from([0.0, 0.01, 0.05, 0.3, 1.0]),
       threshold=st.sampled_from([0.0, 0.1, 0.3, 0.6, 0.7, 0.99]), voting=st.sampled_from([0.0, 0.5]),
       top_k=st.sampled_from([-1, 5]), candidate_size=st.sampled_from([-1, 40]), pairs=st.booleans(),
       mapping=st.sampled_from([Letterbox(1.0, 1.0, 0.0, 0.0), Letterbox(0.25, 0.25, 0.0, 15.0),
                                Letterbox(0.5, 0.3, 3.0, 0.0)]))
def test_prepared_decoder_equals_the_plain_functions(*, seed: int, dtype: str, zero_point: int, face_rate: float,
                                                     threshold: float, voting: float, top_k: int,
                                                     candidate_size: int, pairs: bool, mapping: Letterbox) -> None:
    if dtype == "uint8":
        zero_point = abs(zero_point)
    rng = np.random.default_rng(seed)
    priors_px = generate_priors(SPEC) * np.array([SPEC.width, SPEC.height] * 2, np.float32)
    raw = _raw_output(rng, priors_px.shape[0], dtype, zero_point, face_rate)
    if not pairs:  # scores from elsewhere (another runtime): the plain comparison
        raw = dataclasses.replace(raw, scores=np.ascontiguousarray(raw.scores), score_pairs=None)
    options = DecodeOptions(score_threshold=threshold, box_voting=voting, top_k=top_k, candidate_size=candidate_size)
    prepared = PreparedDecoder.for_output(raw, SPEC, priors_px, options)
    for width, height in ((640, 480), (160, 400)):
        found = prepared.faces(raw, mapping, width, height, landmarks=True)
        _assert_identical(found, _plain_faces(raw, priors_px, SPEC, options=options, mapping=mapping, width=width,
                                                  height=height))
    bare = prepared.faces(raw, mapping, 640, 480)
    assert all(face.landmarks is None for face in bare) and len(bare) == len(found)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_a_byte_table_is_dequantize(dtype: str) -> None:
    codes = np.arange(256, dtype=np.uint8).view(dtype)
    for quant in (Quantization(1 / 256, -128), Quantization(0.037, 5), Quantization(0.2, 0)):
        table = dequantize_table(quant, np.dtype(dtype))
        assert table.dtype == np.float32 and table.shape == (256,)
        assert np.array_equal(table.take(codes.view(np.uint8)), dequantize(codes, quant))


def test_detections_are_ordinary_detections() -> None:
    boxes, scores = [(1.0, 2.0, 3.0, 4.0), (5.0, 6.0, 7.0, 8.5)], [0.9, 0.75]
    points = [((1.0, 1.0),) * 5, ((2.0, 2.5),) * 5]
    for marks in (None, points):
        built = build_detections(boxes, scores, marks)
        plain = [Detection(b, s, None if marks is None else marks[i])
                 for i, (b, s) in enumerate(zip(boxes, scores, strict=True))]
        assert built == plain and [hash(f) for f in built] == [hash(f) for f in plain]
        assert [repr(f) for f in built] == [repr(f) for f in plain]
        assert all(type(f) is Detection for f in built) and built[1].area == plain[1].area == 5.0
        with pytest.raises(AttributeError):
            built[0].score = 0.1  # type: ignore[misc]
    assert build_detections([], [], None) == []


@pytest.fixture(scope="module")
def photos(faces_dir: Path) -> list[np.ndarray]:
    return [load_rgb(p) for p in iter_image_paths([faces_dir])]


@pytest.mark.parametrize("name", ["RFB-320", "retinaface-mnet-320"])
@pytest.mark.parametrize("resize", ["stretch", "letterbox", "corner"])
def test_the_detector_finds_what_the_plain_functions_find(built_model, photos, name: str, resize: str) -> None:
    options = (DecodeOptions(score_threshold=0.3), DecodeOptions(score_threshold=0.1, iou_threshold=0.4,
                                                                 candidate_size=800, top_k=400))
    fd = FaceDetector.from_model(built_model(name), resize=resize, options=options[0])  # type: ignore[arg-type]
    priors_px = fd.priors * np.array([fd.spec.width, fd.spec.height] * 2, dtype=np.float32)
    faces: list[Detection] = []
    for option in options:
        fd.options = option
        for rgb in photos:
            found = fd.detect(rgb).faces
            net_in, mapping = fit_to_input(rgb, fd.detector.width, fd.detector.height, fd.resize,
                                           fd.layout.pad_value)
            raw = fd.detector.run(net_in)
            _assert_identical(found, _plain_faces(raw, priors_px, fd.spec, options=option, mapping=mapping,
                                                  width=rgb.shape[1], height=rgb.shape[0]))
            faces += found
    assert len(faces) > len(photos) * 2 * 5
    assert all(len(f.landmarks or ()) == (5 if fd.landmarks else 0) for f in faces)
