"""What machine a figure was measured on: every benchmark prints it beside its numbers."""

from __future__ import annotations

import os
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def _first_processor(path: Path) -> dict[str, str]:
    try:
        block = path.read_text().split("\n\n")[0]
    except OSError:
        return {}
    pairs = (line.split(":", 1) for line in block.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def cpu_model(path: Path = CPUINFO) -> str:
    """``model name`` with the family and model numbers (a VM may show only a bare vendor name).

    Example:
        >>> cpu_model(Path("/nonexistent")) == (platform.processor() or platform.machine())
        True
    """
    info = _first_processor(path)
    name = info.get("model name") or platform.processor() or platform.machine()
    return f"{name} (family {info['cpu family']} model {info['model']})" if "cpu family" in info else name


def cpu_info(path: Path = CPUINFO) -> dict[str, object]:
    """Model, instruction-set flags (``Features`` on ARM), architecture and core count."""
    info = _first_processor(path)
    return {"model": cpu_model(path), "flags": info.get("flags") or info.get("Features"),
            "machine": platform.machine(), "cores": os.cpu_count()}
