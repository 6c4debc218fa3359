"""The configuration tree: one typed, frozen, validated ``AppConfig`` loaded from TOML.

Sections live beside this module (``camera.py``, ``mqtt.py``, ``app.py``) and follow the field
convention of :mod:`rpi_agent.config.schema`. :func:`load_config` is the only entry point that
touches the disk: it reads the file, applies overrides, validates, then checks what needs I/O
(:mod:`rpi_agent.config.checks`) so every failure is one :class:`ConfigError` line naming the key.

Example:
    >>> cfg = load_config("config.toml", overrides={"cameras[0].source": "photos/"})  # doctest: +SKIP
    >>> cfg.cameras[0].name  # doctest: +SKIP
    'door'
"""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpi_agent.config.app import DetectorConfig, LoggingConfig, PathsConfig
from rpi_agent.config.camera import CameraConfig
from rpi_agent.config.checks import check_environment
from rpi_agent.config.mqtt import MqttConfig
from rpi_agent.config.schema import apply_override, load_section, to_dict
from rpi_agent.config.status import StatusConfig
from rpi_agent.errors import ConfigError

DEFAULT_PATHS = (Path("/etc/faceagent/config.toml"),)
"""Where ``faceagent run`` looks when no ``--config`` is given (then the built-in defaults)."""

__all__ = [
    "AppConfig",
    "CameraConfig",
    "DetectorConfig",
    "LoggingConfig",
    "MqttConfig",
    "PathsConfig",
    "StatusConfig",
    "load_config",
    "parse_config",
]


@dataclass(frozen=True, slots=True)
class AppConfig:
    """The whole daemon configuration.

    Attributes:
        detector: Model and inference settings shared by every camera.
        mqtt: Broker, topics, outbox and Home Assistant discovery.
        cameras: One entry per camera (``[[cameras]]`` tables), names unique.
        paths: Where state (the MQTT outbox) is kept.
        logging: Log level and the periodic stats line.
        status: The live status page.
    """

    detector: DetectorConfig = field(default_factory=DetectorConfig, metadata={"doc": "face detector"})
    mqtt: MqttConfig = field(default_factory=MqttConfig, metadata={"doc": "MQTT broker and topics"})
    cameras: tuple[CameraConfig, ...] = field(
        default=(CameraConfig(),), metadata={"doc": "cameras, each a [[cameras]] table", "min": 1, "max": 8}
    )
    paths: PathsConfig = field(default_factory=PathsConfig, metadata={"doc": "state directories"})
    logging: LoggingConfig = field(default_factory=LoggingConfig, metadata={"doc": "log level, stats line"})
    status: StatusConfig = field(default_factory=StatusConfig, metadata={"doc": "live status page"})

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for index, camera in enumerate(self.cameras):
            if camera.name in seen:
                raise ValueError(f"cameras[{index}].name: {camera.name!r} is used by another camera")
            seen.add(camera.name)
            # One score threshold: a camera may raise it, never lower it (the detector already dropped those faces).
            own = camera.filters.min_score
            if own is not None and own < self.detector.threshold:
                raise ValueError(f"cameras[{index}].filters.min_score: {own} is below detector.threshold "
                                 f"{self.detector.threshold}, so it would never drop a face; raise it or remove it")
        _check_shared_hardware(self.cameras)

    def min_score(self, camera: CameraConfig) -> float:
        """The score a face of ``camera`` needs: its own ``filters.min_score``, else ``detector.threshold``."""
        own = camera.filters.min_score
        return self.detector.threshold if own is None else own

    def __repr__(self) -> str:
        return f"AppConfig({self.redacted_json()})"

    def redacted(self) -> dict[str, Any]:
        """The tree as plain data with secrets replaced by ``***``: safe to log."""
        return to_dict(self, redact=True)

    def redacted_json(self) -> str:
        return json.dumps(self.redacted(), sort_keys=False)

    def camera(self, name: str) -> CameraConfig:
        """The camera called ``name``.

        Raises:
            KeyError: No such camera.
        """
        for camera in self.cameras:
            if camera.name == name:
                return camera
        raise KeyError(name)


def _check_shared_hardware(cameras: tuple[CameraConfig, ...]) -> None:
    """A GPIO pin or a capture device belongs to one camera: two claims fail only at run time."""
    pins: dict[int, str] = {}
    devices: dict[str, str] = {}
    for index, camera in enumerate(cameras):
        for key in ("relay_pin", "led_pin", "buzzer_pin"):
            pin = getattr(camera.gpio, key)
            where = f"cameras[{index}].gpio.{key}"
            if pin is not None and pin in pins:
                raise ValueError(f"{where}: GPIO {pin} is already used by {pins[pin]}")
            if pin is not None:
                pins[pin] = where
        device = exclusive_device(camera.source)
        if device is not None and device in devices:
            raise ValueError(f"cameras[{index}].source: {camera.source!r} is already used by {devices[device]}")
        if device is not None:
            devices[device] = f"cameras[{index}].source"


def exclusive_device(source: str) -> str | None:
    """The device a source string opens for itself alone (a camera, a serial port), normalised; else None.

    Files, folders and network streams can be read by several cameras at once. A malformed spec is
    left to :func:`~rpi_agent.config.checks.check_sources`, which names the camera.
    """
    from rpi_agent.sources.spec import parse_source

    try:
        spec = parse_source(source)
    except ConfigError:
        return None
    if spec.kind == "picamera":
        return f"picamera:{spec.index}"
    if spec.kind == "k210":
        return spec.port
    if spec.kind == "device":
        return f"/dev/video{spec.index}" if spec.index >= 0 else source
    return None


def parse_config(raw: Mapping[str, Any], *, overrides: Mapping[str, Any] | None = None) -> AppConfig:
    """Validate a parsed TOML document (plus dotted overrides) into an :class:`AppConfig`.

    No I/O: a missing model is checked by :func:`load_config`.

    Raises:
        ConfigError: The first problem found, naming its dotted key.
    """
    data = copy.deepcopy(dict(raw))
    for key, value in (overrides or {}).items():
        apply_override(data, key, value)
    return load_section(AppConfig, data, path="")


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning every failure into one ConfigError line."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(f"{path}: config file not readable (permission denied)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    except ValueError as exc:
        # e.g. an integer of more than 4300 digits, which Python refuses to convert
        raise ConfigError(f"{path}: cannot parse the config file: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise ConfigError(f"{path}: arrays or tables nested too deeply") from None


def load_config(
    path: str | Path | None, *, overrides: Mapping[str, Any] | None = None, check_files: bool = True
) -> AppConfig:
    """Read, override, validate and check a config file.

    Args:
        path: The TOML file; ``None`` means the built-in defaults (plus overrides).
        overrides: Dotted keys set after reading, e.g. ``{"cameras[0].source": "photos/"}``.
        check_files: Also check what ``run`` will open (the model, file sources, the state directory,
            the TLS files; :mod:`rpi_agent.config.checks`), as ``run`` and ``check-config`` do.

    Raises:
        ConfigError: One line naming the file or the key.
    """
    raw = read_toml(Path(path)) if path is not None else {}
    config = parse_config(raw, overrides=overrides)
    if check_files:
        check_environment(config)
    return config
