"""Image files for the loader tests, written without holding the picture in memory.

A 13000x13000 RGB picture is 507 MB as an array; these PNGs are streamed row by row through zlib,
so a test can make one in a second and a few megabytes, valid to the last byte.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COLOR_TYPES = {"L": (0, 1), "RGB": (2, 3)}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header(width: int, height: int, mode: str = "RGB") -> bytes:
    """Signature and IHDR chunk of an 8-bit PNG (what a decoder reads before any pixel)."""
    color_type, _ = COLOR_TYPES[mode]
    return PNG_MAGIC + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0))


def png_claiming(width: int, height: int, mode: str = "RGB", payload: bytes = b"") -> bytes:
    """A PNG whose header states ``width`` x ``height`` and whose pixel data is ``payload`` (far too short)."""
    return png_header(width, height, mode) + _chunk(b"IDAT", payload) + _chunk(b"IEND", b"")


def write_png(path: Path, width: int, height: int, mode: str = "RGB", *, rows: int | None = None) -> Path:
    """A valid PNG of mid-grey pixels; ``rows`` < ``height`` cuts the pixel data short (a truncated file)."""
    _, channels = COLOR_TYPES[mode]
    row = b"\x00" + b"\x80" * (width * channels)  # filter byte "none", then the pixels
    packer = zlib.compressobj(1)
    with path.open("wb") as out:
        out.write(png_header(width, height, mode))
        pieces = []
        for _ in range(height if rows is None else rows):
            piece = packer.compress(row)
            if piece:
                pieces.append(piece)
            if sum(map(len, pieces)) > 1 << 20:
                out.write(_chunk(b"IDAT", b"".join(pieces)))
                pieces = []
        pieces.append(packer.flush())
        out.write(_chunk(b"IDAT", b"".join(pieces)))
        if rows is None:
            out.write(_chunk(b"IEND", b""))
    return path
