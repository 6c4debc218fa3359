"""Reading still images from disk into RGB arrays, with one clear line for every bad file.

Memory is bounded by the size of the picture, not trusted from it: a file states its width and
height in a header of a few bytes, and a 20000x20000 PNG of a few kilobytes decodes to 1.2 GB.
So, before any pixel is decoded:

- a JPEG larger than :data:`REDUCE_ABOVE` pixels is decoded at 1/2, 1/4 or 1/8 of its size (the
  decoder's draft mode; the detector sees at most 640x480 anyway);
- an image that would still decode to more than :data:`MAX_PIXELS` pixels is refused with one
  line (``ImageError``), and the caller moves on to the next file.

Pillow's own decompression-bomb check is switched off when this module decodes: the check above
replaces it for every format, and Pillow's would refuse a large JPEG that draft mode can read, or
print a multi-line warning before this module's one line. Pillow decodes nothing else here.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rpi_agent.errors import ImageError

log = logging.getLogger(__name__)

MAX_PIXELS = 40_000_000
"""Most pixels an image may decode to (e.g. 8000x5000): about 280 MB at the peak of the decode."""

REDUCE_ABOVE = 12_000_000
"""JPEGs above this many pixels are decoded at the smallest of 1/2, 1/4, 1/8 that fits under it."""

_PIL_WARNINGS = r"PIL\."


def _refuse_pil_warnings() -> None:
    """Make Pillow's warnings errors, which :func:`read_image` turns into its one-line refusal.

    Pillow warns (on stderr, in several lines) where it should fail, e.g. "Truncated File Read" for a
    cut TIFF or "Corrupt EXIF data", and goes on with what it got. The filter is global and is only
    added when missing (a test runner resets the filters), as ``catch_warnings`` is not thread-safe
    and several cameras may decode at once.
    """
    for action, _message, category, module, _lineno in warnings.filters:
        if action == "error" and category is UserWarning and module is not None and module.pattern == _PIL_WARNINGS:
            return
    warnings.filterwarnings("error", category=UserWarning, module=_PIL_WARNINGS)


_DRAFT_SCALES = (1, 2, 4, 8)
_BAND_PIXELS = 1 << 20


@dataclass(frozen=True, slots=True)
class LoadedImage:
    """A decoded image and the size the file states.

    Attributes:
        rgb: ``(height, width, 3)`` uint8 RGB, C-contiguous; smaller than the file when it was
            decoded at reduced size.
        size: ``(width, height)`` of the picture in the file, after EXIF orientation.
    """

    rgb: np.ndarray
    size: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """File pixels per decoded pixel, ``(x, y)``: 1.0 unless decoded at reduced size."""
        height, width = self.rgb.shape[:2]
        return self.size[0] / width, self.size[1] / height


def _to_rgb8(img: Any, path: Path) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit (or 32-bit integer) greyscale: keep the top 8 bits of the used range.
        arr = np.asarray(img).astype(np.float32)
        peak = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        log.debug("%s: %s image reduced to 8 bits", path, mode)
        return np.repeat(arr8[:, :, None], 3, axis=2)
    if mode != "RGB":
        log.debug("%s: %s image converted to RGB", path, mode)
        img = img.convert("RGB")
    return _rgb_array(img)


def _rgb_array(img: Any) -> np.ndarray:
    """The pixels of an RGB image, copied a band of rows at a time.

    ``np.asarray`` on the whole image goes through ``tobytes()``, which holds the pixels twice
    more while it joins its chunks; band by band the peak is the image plus one array.
    """
    width, height = img.size
    rows = max(1, _BAND_PIXELS // width)
    if rows >= height:
        return np.asarray(img, dtype=np.uint8)
    out = np.empty((height, width, 3), np.uint8)
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        out[top:bottom] = np.asarray(img.crop((0, top, width, bottom)), dtype=np.uint8)
    return out


def _reduce(img: Any, path: Path) -> None:
    """Draft mode for a large JPEG; then refuse what would still be too large (nothing decoded yet)."""
    width, height = img.size
    if img.format == "JPEG" and width * height > REDUCE_ABOVE:
        scale = next((s for s in _DRAFT_SCALES if width * height / (s * s) <= REDUCE_ABOVE), _DRAFT_SCALES[-1])
        img.draft(img.mode, (-(-width // scale), -(-height // scale)))
        log.debug("%s: %dx%d JPEG decoded at %dx%d", path, width, height, *img.size)
    decoded = img.size[0] * img.size[1]
    if decoded > MAX_PIXELS:
        reduced = " even at 1/8 size" if img.format == "JPEG" else ""
        raise ImageError(f"{path}: {width}x{height} pixels is too large{reduced} (the limit is "
                         f"{MAX_PIXELS / 1e6:g} megapixels decoded; JPEGs are decoded at down to 1/8 size)")


def _orientation(img: Any) -> int:
    """The EXIF orientation (1 to 8); 1 when there is none, or the EXIF block is damaged."""
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:  # a damaged EXIF block says nothing reliable; the pixels may still be fine
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright(img: Any, orientation: int) -> Any:
    from PIL import Image

    method = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}.get(orientation)
    return img if method is None else img.transpose(method)


def read_image(path: str | Path) -> LoadedImage:
    """Decode an image file into RGB, at reduced size if it is a large JPEG.

    Greyscale, palette, alpha and 16-bit images are converted; EXIF orientation is applied.

    Args:
        path: Any format Pillow reads.

    Raises:
        ImageError: The file is missing, empty, unreadable, truncated, not an image, has no
            pixels, or is larger than :data:`MAX_PIXELS` after reduction.
    """
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # see the module docstring: _reduce checks every image first
    _refuse_pil_warnings()
    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as opened:
            width, height = opened.size
            _reduce(opened, path)
            orientation = _orientation(opened)  # after the size check: a PNG is decoded to find its EXIF
            opened.load()
            rgb = _to_rgb8(_upright(opened, orientation), path)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not a recognised image format") from None
    except MemoryError:
        raise ImageError(f"{path}: not enough memory to decode it") from None
    except PermissionError:
        raise ImageError(f"{path}: not readable (permission denied)") from None
    except Exception as exc:  # a decoder's own error on a damaged file; its type varies by format
        raise ImageError(f"{path}: corrupt or truncated image ({type(exc).__name__}: {exc})") from None
    if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ImageError(f"{path}: image has no pixels")
    stated = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    return LoadedImage(np.ascontiguousarray(rgb), stated)


def _check_file(path: Path) -> None:
    try:
        if not path.is_file():
            raise ImageError(f"{path}: no such image file")
        if path.stat().st_size == 0:
            raise ImageError(f"{path}: empty file")
    except OSError as exc:
        raise ImageError(f"{path}: {exc.strerror or exc}") from None


def load_rgb(path: str | Path) -> np.ndarray:
    """The RGB pixels of :func:`read_image` (``(height, width, 3)`` uint8, C-contiguous).

    Raises:
        ImageError: As :func:`read_image`.
    """
    return read_image(path).rgb
