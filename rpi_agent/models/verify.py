"""Check our PyTorch networks against the upstream ONNX exports on real photos.

Build-time only (torch, onnxruntime): run in the build venv::

    python -m rpi_agent.models.verify --upstream ../shared/models/upstream --images ../shared/data/faces

Prints one JSON object: per architecture the largest absolute difference of scores and of box
offsets over all photos, plus the output shapes our networks give at other input sizes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from rpi_agent.models import calibration

UPSTREAM_ONNX = "version-{arch}-320_without_postprocessing.onnx"
UPSTREAM_PTH = "version-{arch}-{size}.pth"
OTHER_SIZES = ((640, 480), (480, 360), (333, 251))


def _nchw(samples: list[np.ndarray]) -> list[np.ndarray]:
    return [np.ascontiguousarray(s.transpose(0, 3, 1, 2)) for s in samples]


def compare_with_onnx(arch: str, upstream: Path, images: list[Path]) -> dict[str, Any]:
    """Max abs differences between our network and upstream's ONNX at 320x240."""
    import onnxruntime as ort
    import torch

    from rpi_agent.models.networks import load_network

    net = load_network(arch, str(upstream / UPSTREAM_PTH.format(arch=arch, size=320)))
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the upstream file lists its weights as graph inputs: warning spam
    session = ort.InferenceSession(str(upstream / UPSTREAM_ONNX.format(arch=arch)), options,
                                   providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    samples = _nchw(calibration.load_batches(images, width=320, height=240, mean=127.0, std=128.0, mirror=False))
    diff = {"scores": 0.0, "boxes": 0.0}
    top_score = 0.0
    for x in samples:
        ref_scores, ref_boxes = session.run(None, {input_name: x})
        with torch.no_grad():
            scores, boxes = (t.numpy() for t in net(torch.from_numpy(x)))
        diff["scores"] = max(diff["scores"], float(np.abs(scores - ref_scores).max()))
        diff["boxes"] = max(diff["boxes"], float(np.abs(boxes - ref_boxes).max()))
        top_score = max(top_score, float(ref_scores[..., 1].max()))
    return {"max_abs_diff": diff, "images": len(samples), "shape": list(ref_scores.shape),
            "top_face_score": top_score}


def shapes_at_sizes(arch: str, weights: Path) -> dict[str, list[list[int]]]:
    """Output shapes of our network (loaded strictly) at several input sizes."""
    import torch

    from rpi_agent.models.networks import load_network

    net = load_network(arch, str(weights))
    out = {}
    for width, height in OTHER_SIZES:
        with torch.no_grad():
            scores, boxes = net(torch.zeros(1, 3, height, width))
        out[f"{width}x{height}"] = [list(scores.shape), list(boxes.shape)]
    return out


def strict_mismatch(arch: str, weights: Path) -> str | None:
    """Load another architecture's weights strictly; returns the error text (None if it loaded)."""
    from rpi_agent.models.networks import load_network

    try:
        load_network(arch, str(weights))
    except RuntimeError as exc:
        return str(exc).splitlines()[0]
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point; prints the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, required=True, help="folder with upstream .pth and .onnx")
    parser.add_argument("--images", type=Path, required=True, help="folder of photos")
    args = parser.parse_args(argv)
    images = calibration.list_images(args.images)
    report: dict[str, Any] = {}
    for arch in ("slim", "RFB"):
        report[arch] = compare_with_onnx(arch, args.upstream, images)
        report[arch]["shapes_640_weights"] = shapes_at_sizes(
            arch, args.upstream / UPSTREAM_PTH.format(arch=arch, size=640))
    other = {"slim": "RFB", "RFB": "slim"}
    report["strict_mismatch"] = {
        arch: strict_mismatch(arch, args.upstream / UPSTREAM_PTH.format(arch=other[arch], size=320))
        for arch in other
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
