"""``faceagent k210 flash``: the kflash commands (dry run), the package it writes, and real kflash on a pty.

No board is attached here: kflash 1.1.6 (PyPI, installed by scripts/k210_ci.sh into
<cache>/tools/kflash-1.1.6) is run for real against a pseudo-terminal, where its ISP greeting
fails; what is checked is that faceagent runs it with the right arguments and reports its
failure in one line.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tty
import zipfile
from pathlib import Path

import pytest
from k210_support import REPO, kmodel, kmodel_v4

from rpi_agent.errors import ModelError
from rpi_agent.k210.flash import make_kfpkg, parse_offset
from rpi_agent.paths import cache_dir

KFLASH_DIR = cache_dir() / "tools" / "kflash-1.1.6"


def _faceagent(*args: str) -> subprocess.CompletedProcess[str]:
    if not (KFLASH_DIR / "kflash.py").is_file():
        pytest.fail(f"kflash missing in {KFLASH_DIR}: run scripts/k210_ci.sh")
    env = dict(os.environ, PYTHONPATH=str(KFLASH_DIR))
    return subprocess.run([sys.executable, "-m", "rpi_agent", "k210", "flash", *args], capture_output=True,
                          text=True, check=False, env=env)


@pytest.fixture
def firmware(tmp_path: Path) -> Path:
    path = tmp_path / "maixpy_v0.6.3_minimum_with_kmodel_v4_support.bin"
    path.write_bytes(os.urandom(900_000))  # a firmware-sized stand-in: nothing here is flashed
    return path


def test_dry_run_prints_kflash_and_the_sd_card_copies(firmware: Path, tmp_path: Path) -> None:
    model = kmodel_v4("slim-320")
    proc = _faceagent("--port", "/dev/ttyUSB0", "--board", "goE", "--firmware", str(firmware), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    kflash = shlex.split(lines[0])
    assert kflash[kflash.index("-p") + 1] == "/dev/ttyUSB0" and kflash[kflash.index("-B") + 1] == "goE"
    assert kflash[-1] == str(firmware) and "kflash" in " ".join(kflash[:3])
    copies = [shlex.split(ln) for ln in lines[1:]]
    assert [c[0] for c in copies] == ["cp"] * 4
    assert {Path(c[1]).name for c in copies} == {"main.py", "facedet.py", "kpu_api.py", model.name}
    assert [Path(c[2]).name for c in copies][-1] == "faceagent.kmodel"


def test_sd_card_folder_gets_the_scripts_and_the_kmodel(firmware: Path, tmp_path: Path) -> None:
    sd = tmp_path / "SDCARD"
    sd.mkdir()
    proc = _faceagent("--port", "/dev/ttyUSB0", "--firmware", str(firmware), "--sd", str(sd), "--dry-run")
    assert proc.returncode == 0 and not any(sd.iterdir())  # a dry run copies nothing
    proc = _faceagent("--port", str(tmp_path / "absent"), "--firmware", str(firmware), "--sd", str(sd),
                      "--kflash", f"{sys.executable} -c pass")  # a kflash that succeeds at once
    assert proc.returncode == 0, proc.stderr
    assert (sd / "faceagent.kmodel").read_bytes() == kmodel_v4("slim-320").read_bytes()
    assert (sd / "main.py").read_bytes() == (REPO / "k210" / "main.py").read_bytes()
    assert (sd / "kpu_api.py").is_file() and (sd / "facedet.py").is_file()


def test_flash_offset_packs_firmware_and_kmodel_in_one_kfpkg(firmware: Path, tmp_path: Path) -> None:
    model = kmodel_v4("slim-320")
    proc = _faceagent("--port", "/dev/ttyUSB0", "--firmware", str(firmware), "--model-offset", "0x300000",
                      "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert '"model": 0x300000' in proc.stdout and shlex.split(proc.stdout.splitlines()[1])[-1].endswith(".kfpkg")
    pkg = make_kfpkg(firmware, model, 0x300000, tmp_path / "p.kfpkg")
    with zipfile.ZipFile(pkg) as zf:
        files = json.loads(zf.read("flash-list.json"))["files"]
        assert files == [{"address": 0, "bin": "firmware.bin", "sha256Prefix": True},
                         {"address": 0x300000, "bin": "faceagent.kmodel", "sha256Prefix": False}]
        assert zf.read("faceagent.kmodel") == model.read_bytes() and zf.read("firmware.bin") == firmware.read_bytes()


def test_real_kflash_on_a_stand_in_serial_port_fails_in_one_line(firmware: Path) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        proc = _faceagent("--port", os.ttyname(slave), "--firmware", str(firmware),
                          "--kflash", f"{sys.executable} -m kflash")
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 1
    assert proc.stderr.startswith("faceagent: error: kflash failed: Greeting fail"), proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert shlex.split(proc.stdout.splitlines()[0])[-1] == str(firmware)  # the command was shown before it ran


@pytest.mark.parametrize(("extra", "message"), [
    (["--model-offset", "0x1000"], "must be a 4 KB-aligned address"),
    (["--model-offset", "three"], "is not a number"),
    (["--sd", "/nonexistent/card"], "SD card folder not found"),
])
def test_bad_flash_arguments_are_one_line(firmware: Path, extra: list[str], message: str) -> None:
    proc = _faceagent("--port", "/dev/ttyUSB0", "--firmware", str(firmware), "--dry-run", *extra)
    assert proc.returncode == 1 and message in proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr


def test_a_v5_kmodel_or_a_missing_firmware_is_refused(firmware: Path, tmp_path: Path) -> None:
    proc = _faceagent("--port", "/dev/ttyUSB0", "--firmware", str(firmware), "--model", str(kmodel("slim-320")),
                      "--dry-run")
    assert proc.returncode == 1 and "kmodel V5, not V4" in proc.stderr
    proc = _faceagent("--port", "/dev/ttyUSB0", "--firmware", str(tmp_path / "none.bin"), "--dry-run")
    assert proc.returncode == 1 and "firmware file not found" in proc.stderr
    with pytest.raises(ModelError):
        parse_offset("0x2000001")
