"""Large and lying images: refused in one line before any pixel is decoded, or decoded at reduced size;
`detect` goes on past them and reports boxes in the pixels of the file."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from image_support import png_claiming, write_png
from PIL import Image

from rpi_agent.errors import ImageError
from rpi_agent.imaging.files import MAX_PIXELS, REDUCE_ABOVE, read_image

PEAK_RSS_LIMIT_MB = 400  # what a 1 GB Pi can give `detect` next to the daemon and the camera stack


# The `faceagent` entry point, then the peak resident memory of this process's own address space
# (VmHWM; ru_maxrss would also count the pytest pages the child had at the fork).
_MEASURED = """
import re, sys
from pathlib import Path
from rpi_agent.cli import main
code = main(sys.argv[1:])
hwm = re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)
sys.stderr.write(f"VmHWM {hwm}\\n")
sys.exit(code)
"""


def peak_rss_mb(*args: str) -> tuple[int, str, str, float]:
    """Run `faceagent detect ARGS`: status, stdout, stderr, and its peak RSS in MB."""
    proc = subprocess.run([sys.executable, "-c", _MEASURED, "detect", *args], capture_output=True, text=True,
                          timeout=300, check=False)
    *lines, last = proc.stderr.rstrip("\n").split("\n")
    assert last.startswith("VmHWM "), proc.stderr
    return proc.returncode, proc.stdout, "\n".join(lines), int(last.split()[1]) / 1024


def test_20000_square_png_is_refused_and_the_batch_goes_on(tmp_path, faces_dir, built_model):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(20000, 20000, "RGB", b"\x78\x9c" + b"\x00" * 64))
    with pytest.raises(ImageError, match=r"bomb\.png: 20000x20000 pixels is too large \(the limit is 40 megapix"):
        read_image(bomb)
    proc = subprocess.run([sys.executable, "-m", "rpi_agent", "detect", str(bomb), str(faces_dir / "2.jpg"),
                           "--model", str(built_model("RFB-320"))], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "1 of 2 image(s) could not be read" in proc.stderr
    assert f"{faces_dir / '2.jpg'}: 4 face(s)" in proc.stdout


def test_13000_square_png_stays_within_a_small_pi(tmp_path, faces_dir, built_model):
    big = write_png(tmp_path / "big.png", 13000, 13000)  # a valid file: every row is there
    code, out, err, peak = peak_rss_mb(str(big), str(faces_dir / "2.jpg"), "--model", str(built_model("RFB-320")))
    assert code == 1 and "Traceback" not in err, err
    assert "big.png: 13000x13000 pixels is too large" in err and "2.jpg: 4 face(s)" in out
    assert peak < PEAK_RSS_LIMIT_MB, f"peak RSS {peak:.0f} MB"


def test_largest_accepted_png_decodes_within_the_budget(tmp_path, built_model):
    width = 8000
    big = write_png(tmp_path / "limit.png", width, MAX_PIXELS // width)
    code, out, err, peak = peak_rss_mb(str(big), "--json", "--model", str(built_model("RFB-320")))
    assert code == 0, err
    assert json.loads(out)["width"] == width
    assert peak < PEAK_RSS_LIMIT_MB, f"peak RSS {peak:.0f} MB"


def test_large_jpeg_is_decoded_reduced_and_boxes_stay_in_file_pixels(tmp_path, faces_dir, built_model):
    photo = Image.open(faces_dir / "2.jpg")
    factor = 8
    large = photo.resize((photo.width * factor, photo.height * factor), Image.Resampling.BILINEAR)
    path = tmp_path / "large.jpg"
    large.save(path, quality=90)
    assert large.width * large.height > REDUCE_ABOVE
    image = read_image(path)
    assert image.size == large.size
    assert image.rgb.shape[0] * image.rgb.shape[1] <= REDUCE_ABOVE < large.width * large.height
    model = str(built_model("RFB-320"))
    runs = {}
    for name, file in (("small", faces_dir / "2.jpg"), ("large", path)):
        proc = subprocess.run([sys.executable, "-m", "rpi_agent", "detect", str(file), "--json", "--model", model],
                              capture_output=True, text=True, timeout=300, check=True)
        runs[name] = json.loads(proc.stdout)
    assert (runs["large"]["width"], runs["large"]["height"]) == large.size
    small = sorted(f["box"] for f in runs["small"]["faces"])
    found = sorted(f["box"] for f in runs["large"]["faces"])
    assert len(found) == len(small) == 4
    # The same faces, in the large file's pixels: each box is the small one times the factor (give or take
    # what resampling and the JPEG round trip change: well under a tenth of a face).
    found_small, small = np.array(found) / factor, np.array(small)
    sides = np.tile(small[:, 2:] - small[:, :2], 2)  # w, h, w, h of each face
    assert (np.abs(found_small - small) < 0.1 * sides).all(), (found_small, small)


def test_image_folder_source_plays_past_a_huge_image(tmp_path, faces_dir, caplog):
    from rpi_agent.sources.images import ImageFolderSource

    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "1.png").write_bytes(png_claiming(20000, 20000, "RGB", b"\x78\x9c" + b"\x00" * 64))
    write_png(folder / "2.png", 13000, 13000, "L")
    (folder / "3.jpg").symlink_to(faces_dir / "2.jpg")
    frames = list(ImageFolderSource(folder, camera="door").frames())
    assert [(f.width, f.height) for f in frames] == [(1024, 484)]
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == 2 and all("pixels is too large" in m for m in skipped), skipped
