#!/usr/bin/env python3
"""Peak resident memory of decoding large images with faceagent's loader, each in a fresh process.

Usage: .venv/bin/python scripts/bench_image_memory.py     (prints one JSON document)

Cases: a normal photo (the baseline, same process layout), the largest accepted PNG (8000x5000, the
40 MP limit), a 13000x13000 PNG (refused before decoding), a 20000x20000 PNG header (refused), a
12000x9000 JPEG (decoded at 1/4 in draft mode). Each is written as a valid file first.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from rpi_agent.evaluation.machine import cpu_model

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from image_support import png_claiming, write_png  # noqa: E402

# VmHWM of the child's own address space: ru_maxrss would also count the parent's pages at the fork.
CHILD = """
import re, sys, time
from pathlib import Path
from rpi_agent.imaging.files import read_image
from rpi_agent.errors import ImageError
start = time.perf_counter()
try:
    image = read_image(sys.argv[1]); outcome = "decoded_%dx%d" % image.rgb.shape[1::-1]
except ImageError as exc:
    outcome = "refused"
seconds = time.perf_counter() - start
hwm = int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))
print(outcome, seconds, hwm)
"""


def measure(path: Path) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True,
                         check=True).stdout.split()
    return {"outcome": out[0].replace("_", " "), "seconds": round(float(out[1]), 3),
            "peak_rss_mb": round(int(out[2]) / 1024, 1)}


def main() -> None:
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photo = REPO.parent / "shared" / "data" / "faces" / "2.jpg"
        if not photo.is_file():
            photo = Path(os.environ.get("FACEAGENT_SHARED_DIR", "")) / "data" / "faces" / "2.jpg"
        jpeg = folder / "12000x9000.jpg"
        Image.new("RGB", (12000, 9000), (90, 120, 150)).save(jpeg, quality=85)
        cases = {
            "photo 1024x484 jpg": photo,
            "png 8000x5000 (limit)": write_png(folder / "limit.png", 8000, 5000),
            "png 13000x13000": write_png(folder / "big.png", 13000, 13000),
            "png header 20000x20000": folder / "bomb.png",
            "jpeg 12000x9000": jpeg,
        }
        (folder / "bomb.png").write_bytes(png_claiming(20000, 20000, "RGB", b"\x78\x9c" + b"\x00" * 64))
        report = {name: measure(path) for name, path in cases.items()}
    print(json.dumps({"cases": report, "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                                                   "python": platform.python_version()}}, indent=2))


if __name__ == "__main__":
    main()
