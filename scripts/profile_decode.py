#!/usr/bin/env python3
"""Where the decode stage's time goes, step by step, right after an inference and warm; prints JSON.

Each photo runs through the real INT8 network, then the decode steps of
:class:`rpi_agent.detection.prepared.PreparedDecoder` are timed twice on that output: first right
after the inference (``after_inference``: the stage as ``detect`` and the daemon run it, its code
and data evicted by the network), then again at once (``warm``). The gap between the two is the
cost of cold caches, which the number of different NumPy calls sets more than the arithmetic.
Medians over photos and rounds, microseconds, one thread.

Usage:
    .venv/bin/python scripts/profile_decode.py [--model RFB-320 ...] [--images DIR] [--threshold 0.6] [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from rpi_agent.detection.decoder import DecodeOptions, greedy_keep_rows
from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.detection.preprocess import fit_to_input
from rpi_agent.errors import FaceAgentError
from rpi_agent.evaluation.machine import cpu_model
from rpi_agent.imaging.files import load_rgb
from rpi_agent.imaging.listing import iter_image_paths
from rpi_agent.paths import model_file, shared_dir

STEPS = ("threshold", "sort", "decode_boxes", "nms", "output")


def _steps(fd: FaceDetector, raw: Any, mapping: Any, rgb: np.ndarray) -> dict[str, float]:
    """Microseconds of each step on one network output."""
    clock = time.perf_counter
    t0 = clock()
    decoder = fd.prepared(raw)
    idx = decoder.above(raw)
    t1 = clock()
    idx = decoder.best_first(raw, idx)
    t2 = clock()
    rows = decoder.box_rows(raw, idx)
    t3 = clock()
    keep = greedy_keep_rows(rows, decoder.options)
    t4 = clock()
    frame = decoder.frame_map(mapping, rgb.shape[1], rgb.shape[0])
    decoder.detections(raw, idx, rows, keep, frame, landmarks=fd.landmarks)
    t5 = clock()
    times = (t0, t1, t2, t3, t4, t5)
    return {name: (b - a) * 1e6 for name, a, b in zip(STEPS, times[:-1], times[1:], strict=True)} | {
        "total": (t5 - t0) * 1e6, "candidates": float(idx.size), "faces": float(keep.size)}


def profile(name: str, images: list[np.ndarray], *, threshold: float, rounds: int) -> dict[str, Any]:
    fd = FaceDetector.from_model(model_file(name, "int8"), options=DecodeOptions(score_threshold=threshold))
    inputs = [fit_to_input(rgb, fd.detector.width, fd.detector.height, fd.resize, fd.layout.pad_value)
              for rgb in images]
    samples: dict[str, list[dict[str, float]]] = {"after_inference": [], "warm": []}
    for round_index in range(rounds + 1):
        for rgb, (net_in, mapping) in zip(images, inputs, strict=True):
            raw = fd.detector.run(net_in)
            cold = _steps(fd, raw, mapping, rgb)
            warm = _steps(fd, raw, mapping, rgb)
            if round_index:
                samples["after_inference"].append(cold)
                samples["warm"].append(warm)
    return {"resize": fd.resize, **{kind: {key: round(statistics.median(s[key] for s in rows), 1) for key in rows[0]}
                                    for kind, rows in samples.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = shared_dir()
    parser.add_argument("--model", nargs="+", default=["RFB-320"], metavar="NAME", help="built variants")
    parser.add_argument("--images", type=Path, default=root / "data" / "faces" if root else None, metavar="DIR",
                        help="photos (default ../shared/data/faces)")
    parser.add_argument("--threshold", type=float, default=0.6, help="score threshold (default 0.6)")
    parser.add_argument("--rounds", type=int, default=10, help="timed passes after one warm-up (default 10)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or not 0.0 <= args.threshold < 1.0:
        print("profile_decode: --rounds must be at least 1 and --threshold in [0, 1)", file=sys.stderr)
        return 2
    if args.images is None or not args.images.is_dir():
        print(f"profile_decode: no photo folder {args.images}", file=sys.stderr)
        return 2
    images = [load_rgb(p) for p in iter_image_paths([args.images])]
    try:
        models = {name: profile(name, images, threshold=args.threshold, rounds=args.rounds) for name in args.model}
    except FaceAgentError as exc:
        print(f"profile_decode: {exc}", file=sys.stderr)
        return 1
    json.dump({"cpu": cpu_model(), "machine": platform.machine(), "threads": 1, "images": len(images),
               "threshold": args.threshold, "rounds": args.rounds, "microseconds": models}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
