"""The landmark networks run the way their published WIDER FACE figures were made: each image at its own size.

Upstream's test script scales every image so that its long side is 320 or 640
(``cv2.resize`` of the float image with ``fx = fy = long_side / max(h, w)``, so the output is
``round(w * f) x round(h * f)``), runs the network on exactly that, nothing padded, with priors
for that size, and maps the boxes back by dividing by ``f``. A fixed-size build cannot do that:
its padding changes what the network computes near the image's edges, and resizing to a fixed
output size samples the image on a slightly different grid. So this path runs the FP32 network
exported with a free input size (``<variant>-any-size.onnx``, built beside each landmark variant)
in onnxruntime, and is the check that our definitions and weights reproduce upstream's figures
(docs/accuracy.md). It is an evaluation path only: the product runs the fixed-size builds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rpi_agent.detection.base import DetectionResult
from rpi_agent.detection.decoder import DecodeOptions, postprocess_indexed
from rpi_agent.detection.layouts import ModelLayout
from rpi_agent.detection.priors import generate_priors
from rpi_agent.domain import Detection
from rpi_agent.errors import ModelError, RuntimeMissingError

ANY_SIZE_SUFFIX = "-any-size.onnx"


def any_size_onnx(fp32_tflite: Path) -> Path:
    """The any-size FP32 ONNX beside a built landmark variant's FP32 TFLite (``NAME-fp32.tflite``).

    Raises:
        ModelError: Not a built variant's FP32 file, or a variant without an any-size ONNX.
    """
    name = fp32_tflite.parent.name
    if fp32_tflite.name != f"{name}-fp32.tflite":
        raise ModelError(f"--resize native runs a built variant's FP32 network at each image's size: "
                         f"give NAME:fp32, not {fp32_tflite}")
    path = fp32_tflite.parent / f"{name}{ANY_SIZE_SUFFIX}"
    if not path.is_file():
        raise ModelError(f"{name}: no any-size ONNX ({path} missing): landmark builds write one "
                         f"(`faceagent models build {name}`), Ultra-Light models have none")
    return path


class NativeSizeDetector:
    """An any-size FP32 ONNX landmark network, fed each image with its long side at ``long_side``.

    ``detect`` has :class:`~rpi_agent.detection.face_detector.FaceDetector`'s signature, so the
    WIDER FACE runner takes either.
    """

    def __init__(self, onnx_path: Path, layout: ModelLayout, long_side: int, options: DecodeOptions) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeMissingError("--resize native runs onnxruntime: pip install onnxruntime") from None
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), session_options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = ["scores", "boxes"]  # the export's names (models/convert.py)
        self.layout, self.long_side, self.options, self.path = layout, long_side, options, onnx_path
        self.landmarks = False

    def fit(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        """Upstream's resize: ``(1, 3, h', w')`` float32 RGB (0..255) and the scale ``f``."""
        import cv2

        scale = self.long_side / max(rgb.shape[:2])
        image = rgb.astype(np.float32)
        if scale != 1.0:
            image = np.asarray(cv2.resize(image, None, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR),
                               dtype=np.float32)
        return np.ascontiguousarray(image.transpose(2, 0, 1)[None]), scale

    def detect(self, rgb: np.ndarray) -> DetectionResult:
        """Faces of one ``(H, W, 3)`` uint8 RGB image, boxes in its pixels (unclipped, as upstream wrote them)."""
        net_in, scale = self.fit(rgb)
        height, width = net_in.shape[2:]
        scores, loc = self.session.run(self.output_names, {self.input_name: net_in})
        spec = self.layout.spec(width, height)
        priors = generate_priors(spec) * np.array([width, height, width, height], dtype=np.float32)
        if priors.shape[0] != scores.shape[1]:
            raise ModelError(f"{self.path}: {scores.shape[1]} outputs at {width}x{height}, "
                             f"but the {self.layout.name} priors number {priors.shape[0]}")
        boxes, kept_scores, _ = postprocess_indexed(scores[0, :, 1], loc[0], priors, spec, options=self.options)
        boxes = boxes / np.float32(scale)
        faces = [Detection(tuple(b), s) for b, s in zip(boxes.tolist(), kept_scores.tolist(), strict=True)]  # type: ignore[arg-type]
        return DetectionResult(faces)
