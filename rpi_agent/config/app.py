"""Daemon-wide sections: detector, paths, logging."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rpi_agent.paths import cache_dir

RESIZE_CHOICES = ("auto", "letterbox", "corner", "stretch")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SYSTEM_STATE_DIR = Path("/var/lib/faceagent")


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """The face detector every camera shares (one interpreter, frames taken in turn)."""

    model: str = field(default="auto", metadata={
        "doc": "built model NAME (INT8), NAME:fp32, a path to a .tflite file, or auto (this board's choice: "
               "`faceagent models auto`)", "min": 1})
    threads: int = field(default=1, metadata={"doc": "interpreter threads", "min": 1, "max": 8})
    resize: str = field(default="auto", metadata={
        "doc": "fit frames to the network input: auto (the model's best: stretch for Ultra-Light, corner for "
               "landmark models), letterbox (keep aspect, pad around), corner (keep aspect, pad right/below) "
               "or stretch", "choices": RESIZE_CHOICES})
    threshold: float = field(default=0.7, metadata={
        "doc": "the face score threshold: faces scoring below it are not reported, on every camera "
               "(a camera's filters.min_score can only raise it)", "min": 0.0, "max": 0.99})
    nms_iou: float = field(default=0.3, metadata={
        "doc": "non-maximum suppression: drop a box overlapping a kept one by more than this", "min": 0.05,
        "max": 1.0})
    box_voting: float = field(default=0.0, metadata={
        "doc": "box voting: each kept box becomes the score-weighted mean of the candidates overlapping it by "
               "at least this IoU (0: off)", "min": 0.0, "max": 1.0})


@dataclass(frozen=True, slots=True)
class PathsConfig:
    """Writable places."""

    state_dir: Path | None = field(default=None, metadata={
        "doc": "state (MQTT outbox, the one-daemon lock); default $STATE_DIRECTORY, else /var/lib/faceagent "
               "if writable, else <cache>/state"})
    weights_dir: Path | None = field(default=None, metadata={
        "doc": "folder holding the upstream .pth weights for `faceagent models fetch --config`; "
               "default: download them from the upstream repository at the pinned commit"})

    def resolved_state_dir(self) -> Path:
        """The state directory to use (systemd's ``StateDirectory=`` sets ``$STATE_DIRECTORY``)."""
        if self.state_dir is not None:
            return self.state_dir
        env = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
        if env:
            return Path(env)
        if SYSTEM_STATE_DIR.is_dir() and os.access(SYSTEM_STATE_DIR, os.W_OK):
            return SYSTEM_STATE_DIR
        return cache_dir() / "state"


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """Log level and the periodic stats line."""

    level: str = field(default="INFO", metadata={
        "doc": "log level (the -v/-q options override it)", "choices": LOG_LEVELS})
    stats_interval: float = field(default=60.0, metadata={
        "doc": "seconds between stats lines in the log and on MQTT (0 = never)", "min": 0.0, "max": 86400.0})
