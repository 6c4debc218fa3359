"""Calibration images for INT8 quantisation: listing, hashing, and tensors.

Listing and hashing use the standard library only (the main venv calls them); loading the
tensors needs numpy and OpenCV and runs in the build venv.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from rpi_agent.errors import ImageError
from rpi_agent.imaging import listing

if TYPE_CHECKING:
    import numpy as np

# onnx2tf loads this file from the working directory for its own sanity inference and
# downloads it when absent; the build writes one made from the calibration images instead.
ONNX2TF_SAMPLE_NAME = "calibration_image_sample_data_20x128x128x3_float32.npy"
ONNX2TF_SAMPLE_SHAPE = (20, 128, 128, 3)


def list_images(directory: Path) -> list[Path]:
    """Image files directly in ``directory``, sorted by name: the order the build's hash is taken in.

    Raises:
        ImageError: The directory does not exist or holds no images.
    """
    if not directory.is_dir():
        raise ImageError(f"calibration directory not found: {directory}")
    # By plain name, not natural order: the calibration hash of every existing build depends on it.
    return sorted(listing.list_images(directory, recursive=False))


def hash_images(files: list[Path]) -> str:
    """SHA-256 over the names and bytes of the files, in the given order."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _load_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"cannot decode calibration image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_batches(files: list[Path], *, width: int, height: int, mean: float, std: float,
                 mirror: bool = True) -> list[np.ndarray]:
    """Calibration samples as the float network sees them.

    The images are stretched to the input size the way the runtime does (bilinear), then
    normalised. Mirrored copies double the set cheaply and even out the activation ranges.

    Returns:
        One ``(1, height, width, 3)`` float32 NHWC array per sample, ``(rgb - mean) / std``.
    """
    import cv2
    import numpy as np

    samples = []
    for path in files:
        rgb = cv2.resize(_load_rgb(path), (width, height), interpolation=cv2.INTER_LINEAR)
        variants = (rgb, rgb[:, ::-1]) if mirror else (rgb,)
        for img in variants:
            x = (img.astype(np.float32) - mean) / std
            samples.append(np.ascontiguousarray(x[None]))
    return samples


def write_onnx2tf_sample(files: list[Path], target: Path) -> None:
    """Write the sample array onnx2tf expects (20x128x128x3, RGB in [0, 1]) from our images."""
    import cv2
    import numpy as np

    count, side = ONNX2TF_SAMPLE_SHAPE[0], ONNX2TF_SAMPLE_SHAPE[1]
    images = [cv2.resize(_load_rgb(files[i % len(files)]), (side, side), interpolation=cv2.INTER_AREA)
              for i in range(count)]
    np.save(target, np.stack(images).astype(np.float32) / 255.0)
