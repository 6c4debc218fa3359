"""Frame sources: where frames come from. Concrete adapters import their libraries lazily.

:func:`open_source` maps a source string to an adapter:

| spec | adapter |
|---|---|
| ``picamera``, ``picamera:1`` | :class:`~rpi_agent.sources.picamera.PicameraSource` |
| ``k210:/dev/ttyUSB0?baud=115200`` | :class:`~rpi_agent.sources.k210.K210Source` |
| ``0``, ``/dev/video0``, ``rtsp://...``, a video file | :class:`~rpi_agent.sources.opencv.OpenCVSource` |
| a folder of images, or one image file | :class:`~rpi_agent.sources.images.ImageFolderSource` |
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rpi_agent.errors import ConfigError
from rpi_agent.sources.base import FrameSource
from rpi_agent.sources.common import StateCallback

if TYPE_CHECKING:
    from rpi_agent.config.camera import CameraConfig

__all__ = ["FrameSource", "open_source"]

DEFAULT_LORES = (320, 240)


def _picamera_index(spec: str) -> int:
    _, _, index = spec.partition(":")
    if not index:
        return 0
    if not index.isdigit():
        raise ConfigError(f"source {spec!r}: expected picamera or picamera:N with N a camera number")
    return int(index)


def open_source(
    spec: str,
    camera: CameraConfig,
    *,
    lores_size: tuple[int, int] = DEFAULT_LORES,
    on_state: StateCallback | None = None,
) -> FrameSource:
    """Build the adapter for a source string, configured from the camera's section.

    Args:
        spec: The source string (usually ``camera.source``, or a ``--source`` override).
        camera: Size, rate, orientation, looping and retry settings.
        lores_size: The detector's input ``(width, height)``: picamera's ``lores`` stream size.
        on_state: ``on_state(camera, "source", value)`` on ``ONLINE`` / ``RETRYING`` / ``ENDED``.

    Raises:
        ConfigError: A malformed ``picamera:`` or ``k210:`` spec.
        SourceError: A file or folder that does not exist, an empty folder, picamera2 missing.
    """
    orient = {"rotation": camera.rotation, "hflip": camera.hflip, "vflip": camera.vflip}
    retry = {"retry_initial": camera.retry_initial, "retry_max": camera.retry_max}
    if spec == "picamera" or spec.startswith("picamera:"):
        from rpi_agent.sources.picamera import PicameraSource

        return PicameraSource(
            camera=camera.name, index=_picamera_index(spec), lores_size=lores_size,
            main_size=(camera.width, camera.height), fps=camera.fps, lores_format=camera.lores_format,
            snapshots=camera.snapshot.enabled, on_state=on_state, **orient, **retry,  # type: ignore[arg-type]
        )
    if spec.startswith("k210:"):
        from rpi_agent.sources.k210 import K210Source

        return K210Source.from_spec(spec, camera=camera.name)
    from rpi_agent.sources.opencv import OpenCVSource, is_live_spec

    path = Path(spec).expanduser()
    if not is_live_spec(spec) and (path.is_dir() or _is_image(path)):
        from rpi_agent.sources.images import ImageFolderSource

        return ImageFolderSource(path, camera=camera.name, fps=camera.fps, loop=camera.loop, on_state=on_state,
                                 **orient)  # type: ignore[arg-type]
    return OpenCVSource(
        spec, camera=camera.name, width=camera.width, height=camera.height, fps=camera.fps, loop=camera.loop,
        on_state=on_state, **orient, **retry,  # type: ignore[arg-type]
    )


def _is_image(path: Path) -> bool:
    from rpi_agent.imaging.files import IMAGE_SUFFIXES

    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
