"""Which files are images, and in what order a folder of them is read: one rule for every command.

Standard library only: the model build's own virtualenv lists its calibration images with it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from rpi_agent.errors import ImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})


def natural_key(path: Path) -> tuple[object, ...]:
    """Sort key putting ``2.jpg`` before ``10.jpg`` (digit runs compare as numbers), folder by folder."""
    key: list[object] = []
    for part in path.parts:
        key.extend((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in re.split(r"(\d+)", part) if p)
        key.append((2, 0, ""))  # ends a path component, so "a/x" sorts before "a1/x"
    return tuple(key)


def is_image(path: Path) -> bool:
    """Whether the path names an image file by its suffix (the file is not opened)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_images(path: Path, *, recursive: bool = True) -> list[Path]:
    """The images of a folder in natural order (sub-folders too unless ``recursive`` is off), or the file given.

    Raises:
        ImageError: The path does not exist, or the folder holds no images.
    """
    try:
        is_file, is_dir = path.is_file(), path.is_dir()
    except OSError as exc:  # e.g. a name too long for the file system
        raise ImageError(f"{path}: {exc.strerror or exc}") from None
    if is_file:
        return [path]
    if not is_dir:
        raise ImageError(f"{path}: no such image file or folder")
    candidates = path.rglob("*") if recursive else path.iterdir()
    found = sorted((p for p in candidates if is_image(p) and p.is_file()),
                   key=lambda p: natural_key(p.relative_to(path)))
    if not found:
        raise ImageError(f"{path}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return found


def iter_image_paths(paths: Iterable[Path]) -> Iterable[Path]:
    """Every image named by a list of files and folders, each folder in :func:`list_images` order.

    Raises:
        ImageError: A path does not exist, or a folder holds no images.
    """
    for path in paths:
        yield from list_images(path)
