"""``faceagent k210 flash``: write the firmware and the kmodel to a board with kflash (PyPI).

kflash writes a ``.bin`` at flash address 0 only; anything at another address goes in a
``.kfpkg`` (a zip with ``flash-list.json``). So with ``--model-offset`` (main.py's ``model`` set
to that offset) one package carries the firmware at 0 and the kmodel at the offset, raw (no
SHA-256 prefix: ``kpu.load(offset)`` reads the bytes as they are). Otherwise kflash writes the
firmware alone and the kmodel goes on the SD card with main.py and facedet.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from rpi_agent.errors import ModelError
from rpi_agent.k210 import kmodel as kmodel_format
from rpi_agent.paths import models_dir

log = logging.getLogger(__name__)

BOARDS = ("bit", "bit_mic", "dan", "goE", "goD", "maixduino", "kd233", "trainer")  # kflash 1.1.6 -B
BOARD_SCRIPTS = Path(__file__).resolve().parents[2] / "k210"
FIRMWARE_END = 0x200000  # MaixPy v0.6 images stay below 2 MB; a kmodel offset must not overlap the firmware
FLASH_SIZE = 0x1000000  # 16 MB on the Maix boards


def register_flash(sub: argparse._SubParsersAction, epilog: str) -> None:  # type: ignore[type-arg]
    flash = sub.add_parser("flash", help="write firmware and kmodel to a board with kflash",
                           description="Flash a K210 board with kflash (pip install kflash): the firmware you "
                                       "give, and the V4 kmodel at a flash offset or onto the SD card.",
                           epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    flash.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    flash.add_argument("--board", choices=BOARDS, default="bit", help="kflash -B board (default bit)")
    flash.add_argument("--firmware", type=Path, required=True, metavar="FILE",
                       help="MaixPy/CanMV firmware .bin with kmodel V4 support (downloaded by you)")
    flash.add_argument("--model", type=Path, metavar="FILE",
                       help="kmodel to write (default <cache>/models/slim-320/slim-320-k210-v4.kmodel)")
    flash.add_argument("--model-offset", metavar="ADDR",
                       help="write the kmodel into flash at this address (e.g. 0x300000) instead of the SD card")
    flash.add_argument("--sd", type=Path, metavar="DIR",
                       help="mounted SD card: copy main.py, facedet.py, kpu_api.py and the kmodel there")
    flash.add_argument("--baud", type=int, default=1500000, help="kflash upload speed (default 1500000)")
    flash.add_argument("--kflash", metavar="CMD",
                       help="kflash command (default: kflash on PATH, else python -m kflash)")
    flash.add_argument("--dry-run", action="store_true", help="print every command and copy, run none")
    flash.set_defaults(func=run_flash)


def parse_offset(text: str) -> int:
    """A kmodel flash address, checked to sit between the firmware and the end of flash.

    Raises:
        ModelError: Not a number or out of range.
    """
    try:
        value = int(text, 0)
    except ValueError:
        raise ModelError(f"--model-offset {text!r} is not a number (e.g. 0x300000)") from None
    if not FIRMWARE_END <= value < FLASH_SIZE or value % 0x1000:
        raise ModelError(f"--model-offset {text}: must be a 4 KB-aligned address in "
                         f"[{FIRMWARE_END:#x}, {FLASH_SIZE:#x}) (above the firmware)")
    return value


def _kflash_cmd(explicit: str | None) -> list[str]:
    if explicit:
        return shlex.split(explicit)
    found = shutil.which("kflash")
    return [found] if found else [sys.executable, "-m", "kflash"]


def _check_inputs(args: argparse.Namespace) -> Path:
    if not args.firmware.is_file():
        raise ModelError(f"{args.firmware}: firmware file not found")
    if args.firmware.suffix not in (".bin", ".kfpkg"):
        raise ModelError(f"{args.firmware}: firmware must be a .bin or .kfpkg")
    model = args.model or models_dir() / "slim-320" / "slim-320-k210-v4.kmodel"
    info = kmodel_format.read(model)
    kmodel_format.require_version(info, 4, model)
    if args.sd is not None and args.model_offset is not None:
        raise ModelError("--sd and --model-offset are alternatives: the kmodel goes to one place")
    if args.sd is not None and not args.sd.is_dir():
        raise ModelError(f"{args.sd}: SD card folder not found (is the card mounted?)")
    return model


def make_kfpkg(firmware: Path, model: Path, offset: int, target: Path) -> Path:
    """A kflash package: the firmware at 0 (SHA-256 prefixed, as kflash writes a .bin) and the kmodel at ``offset``."""
    if firmware.stat().st_size > offset:
        raise ModelError(f"{firmware} ({firmware.stat().st_size} bytes) would overlap the kmodel at {offset:#x}")
    files = [{"address": 0, "bin": "firmware.bin", "sha256Prefix": True},
             {"address": offset, "bin": "faceagent.kmodel", "sha256Prefix": False}]
    with zipfile.ZipFile(target, "w") as zf:
        zf.writestr("flash-list.json", json.dumps({"version": "0.1.0", "files": files}, indent=1))
        zf.write(firmware, "firmware.bin")
        zf.write(model, "faceagent.kmodel")
    return target


def run_flash(args: argparse.Namespace) -> int:
    """Flash the board (or print what would be done); returns the exit code."""
    model = _check_inputs(args)
    missing = [name for name in ("main.py", "facedet.py", "kpu_api.py") if not (BOARD_SCRIPTS / name).is_file()]
    if missing:
        raise ModelError(f"board scripts {', '.join(missing)} not found in {BOARD_SCRIPTS} (k210/ of the source tree)")
    offset = parse_offset(args.model_offset) if args.model_offset is not None else None
    base = [*_kflash_cmd(args.kflash), "-p", args.port, "-b", str(args.baud), "-B", args.board]
    with tempfile.TemporaryDirectory(prefix="faceagent-flash-") as tmp:
        image = args.firmware
        if offset is not None:
            image = make_kfpkg(args.firmware, model, offset, Path(tmp) / "faceagent.kfpkg")
            print(f"# {image.name}: {args.firmware.name} at 0x0, {model.name} at {offset:#x} "
                  f"(set \"model\": {offset:#x} in main.py's CONFIG)")
        cmd = [*base, str(image)]
        print(shlex.join(cmd))
        if not args.dry_run:
            _run_kflash(cmd)
    copies = [(BOARD_SCRIPTS / name, name) for name in ("main.py", "facedet.py", "kpu_api.py")]
    if offset is None:
        copies.append((model, "faceagent.kmodel"))
    for src, name in copies:
        dest = (args.sd / name) if args.sd is not None else Path("<SD card>") / name
        print(shlex.join(["cp", str(src), str(dest)]))
        if args.sd is not None and not args.dry_run:
            shutil.copyfile(src, dest)
    return 0


def _run_kflash(cmd: list[str]) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    except FileNotFoundError:
        raise ModelError(f"{cmd[0]}: kflash not found (pip install kflash)") from None
    except subprocess.TimeoutExpired:
        raise ModelError("kflash did not finish in 10 minutes (is the board in download mode?)") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        raise ModelError(f"kflash failed: {lines[-1] if lines else f'exit code {proc.returncode}'}")
