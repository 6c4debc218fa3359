"""Running statistics for the periodic stats line and MQTT stats topic."""

from __future__ import annotations

import logging
import resource
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
# The MQTT sink's counters worth a line: delivery backlog and losses, snapshots dropped under load,
# and failures of its threads.
MQTT_STATS = ("outbox_waiting", "outbox_dropped", "refused", "snapshots_dropped", "snapshot_errors", "errors",
              "last_error")


def cpu_temperature(path: Path = THERMAL_ZONE) -> float | None:
    """CPU temperature in °C from the kernel's thermal zone (millidegrees), or ``None`` if unreadable."""
    try:
        return round(int(path.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


class StatsWindow:
    """Frames and per-stage milliseconds since the last report, per camera.

    Args:
        clock: Monotonic clock, for tests.
    """

    def __init__(self, *, clock=time.monotonic) -> None:
        self._clock = clock
        self._start = clock()
        self._frames: dict[str, int] = defaultdict(int)
        self._ms: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.total_frames = 0
        self.total_events = 0
        self.last_fps = 0.0

    def add(self, camera: str, ms: dict[str, float] | None, *, events: int = 0) -> None:
        """Count one processed frame and its stage timings; ``ms`` None: events only, no frame (faces
        ended by the clock or at shutdown)."""
        self.total_events += events
        if ms is None:
            return
        self._frames[camera] += 1
        self.total_frames += 1
        for stage, value in ms.items():
            self._ms[camera][stage] += value

    def elapsed(self) -> float:
        return self._clock() - self._start

    def snapshot(self, *, reset: bool) -> dict[str, object]:
        """Stats since the last reset: ``{"fps", "cameras": {name: {"fps", "ms": {stage: mean}}}}``."""
        elapsed = max(self.elapsed(), 1e-9)
        cameras: dict[str, object] = {}
        for camera, frames in self._frames.items():
            means = {stage: round(total / frames, 2) for stage, total in self._ms[camera].items()}
            cameras[camera] = {"fps": round(frames / elapsed, 2), "frames": frames, "ms": means}
        fps = round(sum(self._frames.values()) / elapsed, 2)
        self.last_fps = fps
        if reset:
            self._start = self._clock()
            self._frames.clear()
            self._ms.clear()
        return {"fps": fps, "cameras": cameras}


class Every:
    """A periodic job's timer on the monotonic clock; an interval of 0 or less never comes due.

    Example:
        >>> every = Every(5.0, now=100.0)
        >>> every.due(104.0), every.due(105.0), every.due(106.0)
        (False, True, False)
    """

    def __init__(self, interval: float, *, now: float) -> None:
        self.interval = interval
        self._next = now + interval

    def due(self, now: float) -> bool:
        """Whether the job should run now; if so, the next run is one interval later."""
        if self.interval <= 0 or now < self._next:
            return False
        self._next = now + self.interval
        return True


def collect_stats(window: StatsWindow, *, dropped_frames: int,
                  mqtt: Mapping[str, object] | None = None) -> dict[str, object]:
    """The stats report: the window since the last one, process health, totals, outbox counts."""
    stats = window.snapshot(reset=True)
    stats["cpu_temp"] = cpu_temperature()
    stats["dropped_frames"] = dropped_frames
    stats["rss_mb"] = peak_rss_mb()
    stats["frames_total"] = window.total_frames
    stats["events_total"] = window.total_events
    if mqtt is not None:
        stats.update({k: mqtt[k] for k in MQTT_STATS if k in mqtt})
    return stats


def format_line(stats: dict[str, object]) -> str:
    """One human line for the journal: ``fps 9.8 | door 9.8 fps inference 61.2 ms ... | 48.3°C``."""
    parts = [f"fps {stats.get('fps', 0)}"]
    cameras = stats.get("cameras", {})
    if isinstance(cameras, dict):
        for name, cam in cameras.items():
            stages = " ".join(f"{k} {v:.1f}ms" for k, v in cam.get("ms", {}).items())
            parts.append(f"{name} {cam.get('fps', 0)} fps {stages}".rstrip())
    if stats.get("cpu_temp") is not None:
        parts.append(f"cpu {stats['cpu_temp']}°C")
    for key in ("dropped_frames", *MQTT_STATS):
        if stats.get(key):
            parts.append(f"{key.replace('_', ' ')} {stats[key]}")
    return " | ".join(parts)
