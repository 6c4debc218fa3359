"""Check the landmark networks' definitions against the published weights, on real photos.

Build-time only (torch): run in the build venv::

    python -m rpi_agent.models.landmark_verify --weights ../shared/models/landmark --images ../shared/data/faces

Prints one JSON object: per network whether its weights loaded strictly, the output shapes at
several input sizes, the top face score over the photos, how far the raw-pixel wrapper is from
the network fed upstream's normalisation (BGR minus the mean), how far cross-layer equalisation
moves the outputs (it must not change the function), and the first line of the error
each network gives for another network's state dict.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from rpi_agent.models import calibration

WEIGHTS = {"slim-landmark": "slim_Final.pth", "RFB-landmark": "RBF_Final.pth",
           "retinaface-mnet0.25": "mobilenet0.25_Final.pth"}
SIZES = ((320, 240), (640, 480), (320, 256), (480, 352))
# Another network's weights for each: must be refused by the strict load.
FOREIGN = {"slim-landmark": "RBF_Final.pth", "RFB-landmark": "mobilenet0.25_Final.pth",
           "retinaface-mnet0.25": "slim_Final.pth"}


def _shapes(net: Any, arch: str) -> dict[str, list[list[int]]]:
    import torch

    out = {}
    for width, height in SIZES:
        if arch.startswith("retinaface") and (width % 32 or height % 32):
            continue
        with torch.no_grad():
            out[f"{width}x{height}"] = [list(t.shape) for t in net(torch.zeros(1, 3, height, width))]
    return out


def _wrapper_check(net: Any, images: list[Path]) -> tuple[float, float]:
    """Largest output difference raw-pixel wrapper vs upstream input, and the top face score."""
    import torch

    from rpi_agent.models.landmark_networks import TRAINING_MEAN_BGR, RawPixelInput

    wrapped = RawPixelInput(net).eval()
    rgb_batches = calibration.load_batches(images, width=320, height=256, mean=0.0, std=1.0, mirror=False)
    diff, top = 0.0, 0.0
    for rgb in rgb_batches:
        raw = torch.from_numpy(np.ascontiguousarray(rgb.transpose(0, 3, 1, 2)))
        bgr = raw.flip(1) - torch.tensor(TRAINING_MEAN_BGR).reshape(1, 3, 1, 1)
        with torch.no_grad():
            ref, got = net(bgr), wrapped(raw)
        diff = max(diff, *(float((a - b).abs().max()) for a, b in zip(ref, got, strict=True)))
        top = max(top, float(ref[0][0, :, 1].max()))
    return diff, top


def _equalize_check(net: Any, images: list[Path]) -> tuple[int, float]:
    """Blocks equalised and the largest output difference the equalisation makes on the photos."""
    import copy

    import torch

    from rpi_agent.models.equalize import equalize_separable
    from rpi_agent.models.landmark_networks import TRAINING_MEAN_BGR

    equalized = copy.deepcopy(net)
    blocks = equalize_separable(equalized)
    diff = 0.0
    for rgb in calibration.load_batches(images[:6], width=320, height=256, mean=0.0, std=1.0, mirror=False):
        bgr = torch.from_numpy(np.ascontiguousarray(rgb.transpose(0, 3, 1, 2))).flip(1)
        bgr = bgr - torch.tensor(TRAINING_MEAN_BGR).reshape(1, 3, 1, 1)
        with torch.no_grad():
            ref, got = net(bgr), equalized(bgr)
        diff = max(diff, *(float((a - b).abs().max()) for a, b in zip(ref, got, strict=True)))
    return blocks, diff


def report(weights_dir: Path, images: list[Path]) -> dict[str, Any]:
    """The JSON report (see the module docstring)."""
    from rpi_agent.models.landmark_networks import load_landmark_network

    out: dict[str, Any] = {}
    for arch, file_name in WEIGHTS.items():
        net = load_landmark_network(arch, str(weights_dir / file_name))
        diff, top = _wrapper_check(net, images)
        blocks, equalize_diff = _equalize_check(net, images)
        try:
            load_landmark_network(arch, str(weights_dir / FOREIGN[arch]))
            foreign = None
        except RuntimeError as exc:
            foreign = str(exc).strip().splitlines()[0]
        out[arch] = {"strict": True, "shapes": _shapes(net, arch), "wrapper_max_abs_diff": diff,
                     "top_face_score": top, "images": len(images), "foreign_error": foreign,
                     "equalized_blocks": blocks, "equalize_max_abs_diff": equalize_diff}
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point; prints the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True, help="folder with the landmark .pth files")
    parser.add_argument("--images", type=Path, required=True, help="folder of photos")
    args = parser.parse_args(argv)
    print(json.dumps(report(args.weights, calibration.list_images(args.images))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
