"""Frame sources: where frames come from. Concrete adapters import their libraries lazily.

:func:`parse_source` reads a source string into a :class:`SourceSpec` (the table of forms is in
:mod:`rpi_agent.sources.spec`); :func:`open_source` builds its adapter:

| kind | adapter |
|---|---|
| ``picamera`` | :class:`~rpi_agent.sources.picamera.PicameraSource` |
| ``k210`` | :class:`~rpi_agent.sources.k210.K210Source` |
| ``device``, ``stream``, a ``path`` to a video | :class:`~rpi_agent.sources.opencv.OpenCVSource` |
| a ``path`` to a folder of images, or one image | :class:`~rpi_agent.sources.images.ImageFolderSource` |
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rpi_agent.sources.base import FrameSource
from rpi_agent.sources.common import StateCallback
from rpi_agent.sources.spec import SourceSpec, parse_source

if TYPE_CHECKING:
    from rpi_agent.config.camera import CameraConfig

__all__ = ["FrameSource", "SourceSpec", "open_source", "parse_source"]

DEFAULT_LORES = (320, 240)


def open_source(
    spec: SourceSpec,
    camera: CameraConfig,
    *,
    lores_size: tuple[int, int] = DEFAULT_LORES,
    on_state: StateCallback | None = None,
) -> FrameSource:
    """Build the adapter for a parsed source, configured from the camera's section.

    Args:
        spec: The parsed source (usually of ``camera.source``, or a ``--source`` override).
        camera: Size, rate, orientation, looping and retry settings.
        lores_size: The detector's input ``(width, height)``: picamera's ``lores`` stream size.
        on_state: ``on_state(camera, "source", value)`` on ``ONLINE`` / ``RETRYING`` / ``ENDED``.

    Raises:
        SourceError: A file or folder that does not exist, an empty folder, picamera2 missing.
    """
    orient = {"rotation": camera.rotation, "hflip": camera.hflip, "vflip": camera.vflip}
    retry = {"retry_initial": camera.retry_initial, "retry_max": camera.retry_max}
    if spec.kind == "picamera":
        from rpi_agent.sources.picamera import PicameraSource

        return PicameraSource(
            camera=camera.name, index=spec.index, lores_size=lores_size,
            main_size=(camera.width, camera.height), fps=camera.fps, lores_format=camera.lores_format,
            snapshots=camera.snapshot.enabled, on_state=on_state, **orient, **retry,  # type: ignore[arg-type]
        )
    if spec.kind == "k210":
        from rpi_agent.sources.k210 import K210Source

        return K210Source(spec.port, baud=spec.baud, camera=camera.name, on_state=on_state,
                          retry_initial=camera.retry_initial, retry_max=camera.retry_max)
    if spec.kind == "path" and _is_images(spec):
        from rpi_agent.sources.images import ImageFolderSource

        return ImageFolderSource(spec.path, camera=camera.name, fps=camera.fps, loop=camera.loop,
                                 hold=camera.folder_hold, on_state=on_state, **orient)  # type: ignore[arg-type]
    from rpi_agent.sources.opencv import OpenCVSource

    return OpenCVSource(
        spec.text, camera=camera.name, width=camera.width, height=camera.height, fps=camera.fps, loop=camera.loop,
        on_state=on_state, **orient, **retry,  # type: ignore[arg-type]
    )


def _is_images(spec: SourceSpec) -> bool:
    from rpi_agent.imaging.listing import is_image

    path = spec.path
    return path.is_dir() or (is_image(path) and path.is_file())
