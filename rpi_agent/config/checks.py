"""The checks of a validated config that need the disk: what ``run`` will open, tried before it starts.

``check-config`` and ``run`` both call :func:`check_environment`, so a config that ``check-config``
passes does not then fail in ``run`` for a reason the config could have told: the model is loaded and
tried on one blank frame, file and folder sources are looked up, the state directory must be
writable, the TLS files readable. Every failure is one :class:`ConfigError` line naming the key (exit status 78).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING

from rpi_agent.errors import ConfigError, FaceAgentError

if TYPE_CHECKING:
    from rpi_agent.config import AppConfig


def os_reason(exc: OSError) -> str:
    """The short reason of an OS error (``File name too long``), without the repeated file name."""
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long"
    return exc.strerror or str(exc)


def check_model(config: AppConfig) -> Path:
    """Load the model the detector will use and run it once on a blank frame.

    That is what ``run`` does before its first frame: a file that is not a TFLite model, has the
    wrong inputs or outputs, or a box count that does not fit the priors fails here.

    Returns:
        The model file (the configured string when every camera is a K210 board).

    Raises:
        ConfigError: ``detector.model: ...``.
    """
    from rpi_agent.sources.spec import parse_source

    if all(parse_source(c.source).detects_faces for c in config.cameras):
        return Path(config.detector.model)
    import numpy as np

    from rpi_agent.detection.face_detector import FaceDetector
    from rpi_agent.paths import resolve_model

    try:
        path = resolve_model(config.detector.model)
        if not path.is_file():
            raise ConfigError(f"detector.model: {path} does not exist")
        if not os.access(path, os.R_OK):
            raise ConfigError(f"detector.model: {path} is not readable")
        detector = FaceDetector.from_model(path, num_threads=1)
        detector.detect(np.zeros((detector.detector.height, detector.detector.width, 3), np.uint8))
    except OSError as exc:
        raise ConfigError(f"detector.model: {config.detector.model}: {os_reason(exc)}") from None
    except ConfigError:
        raise
    except (FaceAgentError, ValueError) as exc:
        raise ConfigError(f"detector.model: {exc}") from None
    return path


def check_sources(config: AppConfig) -> None:
    """Parse every source string, and look up file and folder sources (a recording that is missing at
    start is a config error: ``run`` would only fail on it, and systemd would restart it in a loop).

    Live sources (cameras, ``/dev/`` devices, streams) are not opened: they may appear later, and
    the daemon retries them.

    Raises:
        ConfigError: ``cameras[N].source: ...``.
    """
    from rpi_agent.sources.spec import parse_source

    for index, camera in enumerate(config.cameras):
        try:
            spec = parse_source(camera.source)
            if spec.kind == "path":
                _check_recording(spec.path)
        except ConfigError as exc:
            text = str(exc).removeprefix("source: ").removeprefix("source ")
            raise ConfigError(f"cameras[{index}].source: {text}") from None


def _check_recording(path: Path) -> None:
    """A folder holds images; a single image decodes; any other file opens as a video."""
    from rpi_agent.errors import ImageError, SourceError
    from rpi_agent.imaging.files import read_image
    from rpi_agent.imaging.listing import IMAGE_SUFFIXES, list_images

    try:
        path.stat()
        if path.is_dir():
            list_images(path)
        elif not os.access(path, os.R_OK):
            raise ConfigError(f"{path}: not readable (permission denied)")
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            read_image(path)
        else:
            _check_video(path)
    except ImageError as exc:
        raise ConfigError(str(exc)) from None
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file or folder (a video file, an image or a folder of images)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {os_reason(exc)}") from None
    except SourceError as exc:
        raise ConfigError(str(exc)) from None


def _check_video(path: Path) -> None:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise ConfigError(f"{path}: not a video file OpenCV can open (nor an image or a folder of images)")
    finally:
        capture.release()


def check_state_dir(config: AppConfig) -> Path:
    """The state directory exists and is writable, or can be created (``run`` creates it then).

    Raises:
        ConfigError: ``paths.state_dir: ...``.
    """
    state_dir = config.paths.resolved_state_dir()
    probe = state_dir
    try:
        while not probe.exists():
            if probe.parent == probe:
                break
            probe = probe.parent
        if not probe.is_dir():
            raise ConfigError(f"paths.state_dir: cannot create {state_dir}: Not a directory")
    except OSError as exc:
        raise ConfigError(f"paths.state_dir: {state_dir}: {os_reason(exc)}") from None
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "is not writable" if probe == state_dir else f"cannot be created ({probe} is not writable)"
        raise ConfigError(f"paths.state_dir: {state_dir} {what}")
    return state_dir


def check_environment(config: AppConfig) -> None:
    """Every check above, and the MQTT TLS files; the model last, as it is the slowest.

    Raises:
        ConfigError: The first problem, naming its key.
    """
    from rpi_agent.config.mqtt import check_tls_files

    check_state_dir(config)
    check_sources(config)
    if config.mqtt.enabled:
        check_tls_files(config.mqtt)
    check_model(config)
