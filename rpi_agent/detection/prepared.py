"""The decode stage of one network, with everything that does not change between frames done once.

:func:`rpi_agent.detection.decoder.postprocess_indexed` states the maths; this is the same maths
arranged for few NumPy calls per frame, since on a fast CPU their fixed cost, not the
arithmetic, sets the time of a decode (60 candidates, 9 faces). Per network: the dequantised
value of every possible output byte (so dequantising and scaling by the variances is one table
lookup), the exponentials of the size offsets, and the priors as rows. Per frame: the threshold
is one comparison on the score pairs viewed as 16-bit words, the sort runs on the score bytes,
only the candidates are decoded, boxes stay ``(4, K)`` rows from the decode through NMS to the
frame, and the faces are built from one ``tolist`` per column. Every value is computed with
the same float32 operations in the same order as the plain functions, so the faces are
identical to the last bit.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING

import numpy as np

from rpi_agent.detection.decoder import DecodeOptions, candidates_above, greedy_keep_rows, quantized_bound, vote
from rpi_agent.detection.preprocess import Letterbox
from rpi_agent.detection.priors import PriorSpec
from rpi_agent.detection.quantization import Quantization, dequantize, dequantize_table
from rpi_agent.domain import Box, Detection, Point

if TYPE_CHECKING:
    from rpi_agent.detection.tflite import RawOutput

_LITTLE_ENDIAN = sys.byteorder == "little"
_WORD = {np.dtype(np.int8): np.dtype(np.int16), np.dtype(np.uint8): np.dtype(np.uint16)}
# Frame shapes and letterboxes remembered: a camera has one; a folder of photos has one per size.
_MAX_FRAME_MAPS = 256


@dataclass(frozen=True, slots=True)
class FrameMap:
    """Where the input-pixel boxes of one frame shape go: ``frame = (input - offset) / scale``, clipped.

    Attributes:
        offset: ``(4, 1)`` float32 ``x, y, x, y`` offsets; ``scale``: the same for the scales.
        upper: ``(4, 1)`` float32 frame ``width, height, width, height`` the boxes are clipped to.
        point_offset: ``(2,)`` float32 ``x, y`` offsets of landmarks; ``point_scale``: their scales.
    """

    offset: np.ndarray
    scale: np.ndarray
    upper: np.ndarray
    point_offset: np.ndarray
    point_scale: np.ndarray

    @classmethod
    def of(cls, mapping: Letterbox, width: int, height: int) -> FrameMap:
        """The map of a letterbox onto a ``width`` x ``height`` frame."""
        offset = np.array([mapping.offset_x, mapping.offset_y], dtype=np.float32)
        scale = np.array([mapping.scale_x, mapping.scale_y], dtype=np.float32)
        return cls(np.tile(offset, 2)[:, None], np.tile(scale, 2)[:, None],
                   np.array([width, height] * 2, dtype=np.float32)[:, None], offset, scale)


class PreparedDecoder:
    """Threshold, decode, NMS and the faces in frame pixels, for the outputs of one network.

    Build it with :meth:`for_output` from a first output: the lookup tables follow that output's
    dtypes and quantisations, which every later output of the same network shares.

    Args:
        spec: The prior layout (variances).
        priors_px: ``(N, 4)`` float32 priors ``(cx, cy, w, h)`` in input pixels.
        options: Thresholds and limits.
        tables: ``(256,)`` float32 lookup tables by output byte: ``scores`` (dequantised face
            scores), ``centers`` (box centre offsets x centre variance), ``half_sizes`` (half the exp of
            the size offsets x size variance), ``points`` (landmark offsets x centre variance); a table is
            absent for a float output.

    Example:
        >>> decoder = PreparedDecoder.for_output(raw, spec, priors_px, DecodeOptions())  # doctest: +SKIP
        >>> decoder.faces(raw, mapping, 640, 480)  # doctest: +SKIP
    """

    def __init__(self, spec: PriorSpec, priors_px: np.ndarray, options: DecodeOptions,
                 tables: dict[str, np.ndarray]) -> None:
        self.options = options
        self.spec = spec
        self.priors = np.ascontiguousarray(priors_px, dtype=np.float32)
        self.prior_rows = np.ascontiguousarray(self.priors.T)
        self._prior_points = self.priors[:, None, :]  # (N, 1, 4): one prior per landmark row
        self._scores = tables.get("scores")
        self._centers, self._half_sizes = tables.get("centers"), tables.get("half_sizes")
        self._points = tables.get("points")
        self._maps: dict[tuple[float, float, float, float, int, int], FrameMap] = {}
        self._bound: int | None = None
        self._word_limit: np.integer | None = None

    def _set_bound(self, raw: RawOutput) -> int:
        """Set (and return) the byte threshold of the scores, and that of their (background, face)
        pairs read as words."""
        dtype, threshold = raw.scores.dtype, self.options.score_threshold
        bound = quantized_bound(dtype, raw.score_quant, threshold)
        info = np.iinfo(dtype)
        self._bound = info.min - 1 if bound is None else min(bound, int(info.max))
        word = _WORD[dtype]
        if self._bound < info.max:
            self._word_limit = word.type((self._bound + 1) * 256)
        return self._bound

    @classmethod
    def for_output(cls, raw: RawOutput, spec: PriorSpec, priors_px: np.ndarray,
                   options: DecodeOptions) -> PreparedDecoder:
        """The decoder of the network that produced ``raw``."""
        center, size = np.float32(spec.center_variance), np.float32(spec.size_variance)
        tables: dict[str, np.ndarray] = {}
        if _is_byte(raw.scores, raw.score_quant):
            tables["scores"] = dequantize_table(raw.score_quant, raw.scores.dtype)
        if _is_byte(raw.loc, raw.loc_quant):
            # The float32 products and exponentials the plain decode computes, by output byte.
            offsets = dequantize_table(raw.loc_quant, raw.loc.dtype)
            # Half sizes: halving is exact, so exp x prior x 0.5 equals (prior x exp) / 2 bit for bit.
            tables["centers"], tables["half_sizes"] = offsets * center, np.exp(offsets * size) * np.float32(0.5)
        if raw.landmarks is not None and _is_byte(raw.landmarks, raw.landmark_quant):
            tables["points"] = dequantize_table(raw.landmark_quant, raw.landmarks.dtype) * center
        return cls(spec, priors_px, options, tables)

    def frame_map(self, mapping: Letterbox, width: int, height: int) -> FrameMap:
        """The cached :class:`FrameMap` of a letterbox and frame size (a camera has one)."""
        # A plain tuple key: hashing the frozen dataclass would run Python code on every frame.
        key = (mapping.scale_x, mapping.scale_y, mapping.offset_x, mapping.offset_y, width, height)
        found = self._maps.get(key)
        if found is None:
            if len(self._maps) >= _MAX_FRAME_MAPS:
                self._maps.clear()
            found = self._maps[key] = FrameMap.of(mapping, width, height)
        return found

    def candidates(self, raw: RawOutput) -> np.ndarray:
        """``(K,)`` int64 rows of the priors above the threshold, best first (ties: lower row first)."""
        return self.best_first(raw, self.above(raw))

    def best_first(self, raw: RawOutput, idx: np.ndarray) -> np.ndarray:
        """The rows ``idx`` sorted best score first, stable, cut to ``candidate_size``."""
        scores, options = raw.scores, self.options
        if self._scores is None:
            order = (-dequantize(scores.take(idx), raw.score_quant)).argsort(kind="stable")
        else:
            # Dequantising is increasing, so sorting the bytes sorts the scores; ``~q`` reverses
            # the order without the overflow of ``-q``.
            order = (~scores.take(idx)).argsort(kind="stable")
        if options.candidate_size > 0:
            order = order[: options.candidate_size]
        return idx.take(order)  # type: ignore[no-any-return]

    def above(self, raw: RawOutput) -> np.ndarray:
        """``(K,)`` int64 ascending rows whose face score is above the threshold."""
        if self._scores is None:
            return candidates_above(raw.scores, raw.score_quant, self.options.score_threshold)
        return self._above(raw)

    def _above(self, raw: RawOutput) -> np.ndarray:
        """``(K,)`` int64 ascending rows whose quantised face score is above the threshold.

        When the scores are the face column of contiguous ``(background, face)`` byte pairs, the
        pairs read as little-endian 16-bit words have the face byte on top, so ``face > bound``
        is one comparison of the words with ``(bound + 1) * 256``, over contiguous memory.
        """
        bound = self._bound
        if bound is None:
            bound = self._set_bound(raw)
        scores, pairs, limit = raw.scores, raw.score_pairs, self._word_limit
        if limit is None:
            return np.empty(0, dtype=np.int64)
        if pairs is not None and _LITTLE_ENDIAN and pairs.flags.c_contiguous:
            return (pairs.view(limit.dtype).reshape(-1) >= limit).nonzero()[0]  # type: ignore[no-any-return]
        if bound < np.iinfo(scores.dtype).min:
            return np.arange(scores.shape[0])
        return (scores > scores.dtype.type(bound)).nonzero()[0]  # type: ignore[no-any-return]

    def box_rows(self, raw: RawOutput, idx: np.ndarray) -> np.ndarray:
        """``(4, K)`` float32 rows ``x1, y1, x2, y2`` in input pixels of the candidates ``idx``.

        The same float32 operations in the same order as
        :func:`rpi_agent.detection.decoder.decode_boxes`.
        """
        priors = self.prior_rows.take(idx, axis=1)
        offsets = raw.loc.take(idx, axis=0).T
        if self._centers is None or self._half_sizes is None:
            real = dequantize(offsets, raw.loc_quant)
            centers = real[:2] * np.float32(self.spec.center_variance)
            sizes = np.exp(real[2:] * np.float32(self.spec.size_variance))
            sizes *= np.float32(0.5)
        else:
            codes = offsets.view(np.uint8)
            centers, sizes = self._centers.take(codes[:2]), self._half_sizes.take(codes[2:])
        centers *= priors[2:]
        centers += priors[:2]
        sizes *= priors[2:]
        rows = np.empty((4, idx.shape[0]), dtype=np.float32)
        np.subtract(centers, sizes, out=rows[:2])
        np.add(centers, sizes, out=rows[2:])
        return rows

    def scores_of(self, raw: RawOutput, idx: np.ndarray) -> np.ndarray:
        """``(K,)`` float32 scores of the prior rows ``idx``, as :func:`dequantize` gives them."""
        values = raw.scores.take(idx)
        if self._scores is None:
            return dequantize(values, raw.score_quant)
        return self._scores.take(values.view(np.uint8))  # type: ignore[no-any-return]

    def faces(self, raw: RawOutput, mapping: Letterbox, width: int, height: int, *,
              landmarks: bool = False) -> list[Detection]:
        """The faces of one frame, best first, boxes in frame pixels clipped to the frame.

        Args:
            raw: The network's outputs for the frame.
            mapping: How the frame was fitted to the input.
            width: Frame width; ``height``: frame height.
            landmarks: Also decode the five landmarks of each face (the model must have them).
        """
        idx = self.candidates(raw)
        rows = self.box_rows(raw, idx)
        keep = greedy_keep_rows(rows, self.options)
        return self.detections(raw, idx, rows, keep, self.frame_map(mapping, width, height), landmarks=landmarks)

    def detections(self, raw: RawOutput, idx: np.ndarray, rows: np.ndarray, keep: np.ndarray, frame: FrameMap, *,
                   landmarks: bool = False) -> list[Detection]:
        """Build the faces NMS kept: ``keep`` indexes ``idx`` (prior rows) and ``rows`` (their boxes)."""
        kept = idx.take(keep)
        if self.options.box_voting:
            # The same (K, 4) layout as the plain path: the matrix product's rounding follows it.
            voted = vote(keep, np.ascontiguousarray(rows.T), self.scores_of(raw, idx), self.options.box_voting)
            boxes = np.ascontiguousarray(voted.T)
        else:
            boxes = rows.take(keep, axis=1)
        boxes -= frame.offset
        boxes /= frame.scale
        np.maximum(boxes, 0.0, out=boxes)
        np.minimum(boxes, frame.upper, out=boxes)
        corners = list(zip(*boxes.tolist(), strict=True))
        scores = self.scores_of(raw, kept).tolist()
        marks = raw.landmarks
        points = self.landmarks_of(marks, raw.landmark_quant, kept, frame) if landmarks and marks is not None else None
        return build_detections(corners, scores, points)

    def landmarks_of(self, offsets: np.ndarray, quant: Quantization, kept: np.ndarray,
                     frame: FrameMap) -> list[tuple[Point, ...]]:
        """Five ``(x, y)`` frame points for each prior row in ``kept``, as
        :func:`rpi_agent.detection.decoder.decode_landmarks` and the letterbox map compute them.

        Args:
            offsets: ``(N, 10)`` landmark offsets of every prior (the network output); ``quant``: their quantisation.
            kept: ``(M,)`` prior rows of the faces.
            frame: Where the input pixels go in the frame.
        """
        survivors = offsets.take(kept, axis=0)
        if self._points is None:
            points = dequantize(survivors, quant).reshape(-1, 5, 2) * np.float32(self.spec.center_variance)
        else:
            points = self._points.take(survivors.view(np.uint8)).reshape(-1, 5, 2)
        priors = self._prior_points.take(kept, axis=0)
        points *= priors[..., 2:]
        points += priors[..., :2]
        points -= frame.point_offset
        points /= frame.point_scale
        xs, ys = points.reshape(-1, 2).T.tolist()
        per_point = iter(zip(xs, ys, strict=True))
        return list(zip(*[per_point] * 5, strict=True))


def build_detections(boxes: list[Box], scores: list[float],
                     landmarks: list[tuple[Point, ...]] | None) -> list[Detection]:
    """``Detection(box, score, landmarks)`` for each face, made in C, with no Python frame per face.

    Args:
        boxes: ``M`` ``(x1, y1, x2, y2)`` tuples; ``scores``: ``M`` floats.
        landmarks: ``M`` tuples of five ``(x, y)`` points, or ``None`` (no landmarks).
    """
    points: Iterable[tuple[Point, ...] | None] = repeat(None, len(boxes)) if landmarks is None else landmarks
    return list(map(tuple.__new__, repeat(Detection), zip(boxes, scores, points, strict=True)))


def _is_byte(values: np.ndarray, quant: Quantization) -> bool:
    """Whether ``values`` are quantised 8-bit integers (read through a lookup table)."""
    return not quant.is_float and values.dtype in _WORD
