"""Speed of every built variant, stage by stage, beside onnxruntime FP32 on the same network.

All engines run in one process with one thread each, interleaved image by image, so that
background load on the machine hits every engine alike. Only medians are reported.
"""

from __future__ import annotations

import logging
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rpi_agent.detection.decoder import DecodeOptions, greedy_keep_rows
from rpi_agent.detection.face_detector import DEFAULT_RESIZE, FaceDetector
from rpi_agent.detection.preprocess import ResizeMode, fit_to_input
from rpi_agent.errors import ModelError, RuntimeMissingError
from rpi_agent.evaluation.machine import cpu_model
from rpi_agent.paths import model_file, models_dir, shared_dir

log = logging.getLogger(__name__)

STAGES = ("preprocess", "inference", "decode")
# Acceptance limits of the detection core.
MAX_DECODE_SHARE = 0.15
# The crowd photos of ../shared/data/faces (200+ faces each): the decode share is also reported on them.
CROWD_PHOTOS = ("17.jpg", "25.jpg")
MAX_INT8_VS_ORT = 1.0
_UPSTREAM_ONNX = "version-{arch}-320_without_postprocessing.onnx"


@dataclass(slots=True)
class Samples:
    """Per-stage timings of one engine, in milliseconds."""

    ms: dict[str, list[float]] = field(default_factory=dict)

    def add(self, stages: dict[str, float]) -> None:
        for key, value in stages.items():
            self.ms.setdefault(key, []).append(value)

    def medians(self) -> dict[str, float]:
        return {key: round(statistics.median(values), 4) for key, values in self.ms.items()}


class OrtEngine:
    """onnxruntime FP32 on the ONNX file of a variant, one thread, fed like the TFLite model."""

    def __init__(self, path: Path, *, num_threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeMissingError("the benchmark compares against onnxruntime: pip install onnxruntime") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Upstream ONNX files list their weights as graph inputs; ORT warns once per tensor.
        options.log_severity_level = 3
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0]
        shape = self.input.shape
        self.height, self.width = int(shape[2]), int(shape[3])

    def tensor(self, rgb: np.ndarray) -> np.ndarray:
        """NCHW float32 ``(rgb - 127) / 128`` of an image already at the input size."""
        return ((rgb.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None].copy()

    def run(self, tensor: np.ndarray) -> float:
        """Run once; returns inference milliseconds."""
        t0 = time.perf_counter()
        self.session.run(None, {self.input.name: tensor})
        return (time.perf_counter() - t0) * 1e3


def built_variants() -> list[str]:
    """Names of every variant with an INT8 build in the cache, sorted."""
    root = models_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if model_file(p.name, "int8").is_file())


def onnx_for(name: str) -> Path | None:
    """The variant's own ONNX export, else upstream's ONNX for the 320 variants."""
    own = models_dir() / name / f"{name}.onnx"
    if own.is_file():
        return own
    arch, _, size = name.partition("-")
    shared = shared_dir()
    if shared is not None and size == "320":
        upstream = shared / "models" / "upstream" / _UPSTREAM_ONNX.format(arch=arch)
        if upstream.is_file():
            return upstream
    return None


def _file_sizes(name: str, onnx: Path | None) -> dict[str, int | None]:
    paths = {"int8": model_file(name, "int8"), "fp32": model_file(name, "fp32"), "onnx": onnx}
    return {key: (p.stat().st_size if p is not None and p.is_file() else None) for key, p in paths.items()}


Engine = Callable[[np.ndarray], dict[str, float]]


def _engines(name: str, resize: ResizeMode | None, threshold: float) -> tuple[dict[str, Engine], FaceDetector]:
    engines: dict[str, Engine] = {}
    options = DecodeOptions(score_threshold=threshold)
    int8 = FaceDetector.from_model(model_file(name, "int8"), resize=resize, options=options)
    resize = int8.resize
    engines["int8"] = lambda rgb: int8.detect(rgb).ms
    if model_file(name, "fp32").is_file():
        fp32 = FaceDetector.from_model(model_file(name, "fp32"), resize=resize, options=options)
        engines["fp32_tflite"] = lambda rgb: fp32.detect(rgb).ms
    onnx = onnx_for(name)
    if onnx is not None:
        ort_engine = OrtEngine(onnx)
        if (ort_engine.width, ort_engine.height) != int8.detector.input_size:
            raise ModelError(f"{onnx}: input {ort_engine.width}x{ort_engine.height} differs from the {name} build")

        def run_ort(rgb: np.ndarray) -> dict[str, float]:
            net_in, _ = fit_to_input(rgb, ort_engine.width, ort_engine.height, resize)
            return {"inference": ort_engine.run(ort_engine.tensor(net_in))}

        engines["onnxruntime_fp32"] = run_ort
    return engines, int8


def _run(engines: dict[str, Engine], images: list[np.ndarray], rounds: int) -> dict[str, dict[str, float]]:
    """Median ms per engine and stage; engines take turns image by image; the first pass warms up."""
    samples = {key: Samples() for key in engines}
    for round_index in range(rounds + 1):
        for rgb in images:
            for key, engine in engines.items():
                stages = engine(rgb)
                if round_index:
                    samples[key].add(stages)
    return {key: s.medians() for key, s in samples.items()}


def _ratios(medians: dict[str, dict[str, float]]) -> dict[str, float | None]:
    int8, alone, crowds = medians["int8"], medians["int8_alone"], medians.get("int8_crowds")
    ort_ms = medians.get("onnxruntime_fp32", {}).get("inference")
    fp32_ms = medians.get("fp32_tflite", {}).get("inference")
    return {
        "int8_vs_ort_fp32_inference": round(int8["inference"] / ort_ms, 3) if ort_ms else None,
        "int8_vs_tflite_fp32_inference": round(int8["inference"] / fp32_ms, 3) if fp32_ms else None,
        "decode_vs_inference": round(alone["decode"] / alone["inference"], 3),
        "decode_vs_inference_crowds": round(crowds["decode"] / crowds["inference"], 3) if crowds else None,
        "decode_vs_inference_interleaved": round(int8["decode"] / int8["inference"], 3),
    }


def decode_breakdown(detector: FaceDetector, images: list[np.ndarray], *, rounds: int) -> dict[str, float]:
    """Median milliseconds of each step of the decode stage, the way :meth:`FaceDetector.detect` runs them.

    Every step is timed right after a real inference, so caches are as cold as in production.

    Returns:
        ``threshold``, ``sort_dequantize`` (the sort: dequantising is a table lookup inside the
        next steps), ``decode_boxes``, ``nms``, ``output`` (boxes and landmarks to frame pixels,
        the detections), plus the median ``candidates`` entering NMS and ``faces`` kept.
    """
    width, height = detector.detector.input_size
    samples = Samples()
    for round_index in range(rounds + 1):
        for rgb in images:
            net_in, mapping = fit_to_input(rgb, width, height, detector.resize, detector.layout.pad_value)
            raw = detector.detector.run(net_in)
            t0 = time.perf_counter()
            decoder = detector.prepared(raw)
            idx = decoder.above(raw)
            t1 = time.perf_counter()
            idx = decoder.best_first(raw, idx)
            t2 = time.perf_counter()
            rows = decoder.box_rows(raw, idx)
            t3 = time.perf_counter()
            keep = greedy_keep_rows(rows, decoder.options)
            t4 = time.perf_counter()
            frame = decoder.frame_map(mapping, rgb.shape[1], rgb.shape[0])
            faces = decoder.detections(raw, idx, rows, keep, frame, landmarks=detector.landmarks)
            t5 = time.perf_counter()
            if round_index:
                samples.add({"threshold": (t1 - t0) * 1e3, "sort_dequantize": (t2 - t1) * 1e3,
                             "decode_boxes": (t3 - t2) * 1e3, "nms": (t4 - t3) * 1e3, "output": (t5 - t4) * 1e3,
                             "candidates": float(idx.size), "faces": float(len(faces))})
    return samples.medians()


def bench_variant(name: str, images: list[np.ndarray], *, rounds: int, resize: ResizeMode | None,
                  threshold: float = 0.6, crowds: list[np.ndarray] | None = None) -> dict[str, Any]:
    """Benchmark one built variant on in-memory RGB images.

    Two passes: the engines interleaved image by image (for fair INT8 / FP32 / onnxruntime
    ratios), then INT8 alone, as the daemon runs it (``int8_alone``: the decode share of the
    acceptance; interleaving with other networks leaves the decode stage with cold caches);
    with ``crowds``, a third pass of INT8 alone on those photos (``int8_crowds``), where the
    decode has hundreds of candidates and faces.

    Args:
        name: Built variant name.
        images: RGB frames; every engine sees each one in turn.
        rounds: Passes over ``images``; a first pass warms up and is not counted.
        resize: Resize mode of the detectors; ``None``: each model family's own.
        threshold: Score threshold of the decode stage.
        crowds: Crowd photos (usually also among ``images``) for the ``int8_crowds`` pass.

    Returns:
        JSON-friendly record: medians per engine and stage, ratios, acceptance, file sizes.
    """
    engines, int8 = _engines(name, resize, threshold)
    medians = _run(engines, images, rounds)
    medians["int8_alone"] = _run({"int8": engines["int8"]}, images, rounds)["int8"]
    if crowds:
        medians["int8_crowds"] = _run({"int8": engines["int8"]}, crowds, rounds)["int8"]
    ratios = _ratios(medians)
    vs_ort, crowd_share = ratios["int8_vs_ort_fp32_inference"], ratios["decode_vs_inference_crowds"]
    decode_share = float(medians["int8_alone"]["decode"] / medians["int8_alone"]["inference"])
    onnx = onnx_for(name)
    return {
        "name": name,
        "resize": int8.resize,
        "onnx": str(onnx) if onnx else None,
        "median_ms": medians,
        "ratios": ratios,
        "acceptance": {
            "int8_not_slower_than_ort_fp32": None if vs_ort is None else vs_ort <= MAX_INT8_VS_ORT,
            "decode_under_15pct_of_inference": decode_share < MAX_DECODE_SHARE and (
                crowd_share is None or crowd_share < MAX_DECODE_SHARE),
        },
        "int8_decode_steps_ms": decode_breakdown(int8, images, rounds=rounds),
        "file_bytes": _file_sizes(name, onnx),
        "samples": len(images) * rounds,
    }


def environment(num_images: int, rounds: int, resize: ResizeMode | None = DEFAULT_RESIZE) -> dict[str, Any]:
    """Where and how the benchmark ran."""
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for package in ("ai-edge-litert", "onnxruntime", "numpy", "opencv-python-headless"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "machine": platform.machine(), "cpu": cpu_model(),
        "python": platform.python_version(), "packages": versions, "threads": 1,
        "images": num_images, "rounds": rounds, "resize": resize or "auto",
    }
