"""Reading still images from disk into RGB arrays, with one clear line for every bad file."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from rpi_agent.errors import ImageError

log = logging.getLogger(__name__)

def _to_rgb8(img: object, path: Path) -> np.ndarray:
    from PIL import Image

    assert isinstance(img, Image.Image)
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit (or 32-bit integer) greyscale: keep the top 8 bits of the used range.
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        log.debug("%s: %s image reduced to 8 bits", path, mode)
        return np.repeat(arr8[:, :, None], 3, axis=2)
    if mode != "RGB":
        log.debug("%s: %s image converted to RGB", path, mode)
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file into RGB.

    Greyscale, palette, alpha and 16-bit images are converted; EXIF orientation is applied.

    Args:
        path: Any format Pillow reads.

    Returns:
        ``(height, width, 3)`` uint8 RGB, C-contiguous.

    Raises:
        ImageError: The file is missing, empty, truncated, not an image, or has no pixels.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file")
    try:
        with Image.open(path) as opened:
            opened.load()
            rgb = _to_rgb8(ImageOps.exif_transpose(opened) or opened, path)
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not a recognised image format") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: corrupt or truncated image ({exc})") from None
    if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ImageError(f"{path}: image has no pixels")
    return np.ascontiguousarray(rgb)
