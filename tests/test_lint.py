"""House style is checked, not hoped for: ruff on everything, mypy on the package."""

import subprocess
import sys

from rpi_agent.paths import REPO_ROOT


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=600, check=False)


def test_ruff_is_clean():
    proc = run("ruff", "check", "rpi_agent", "tests", "scripts")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_clean():
    proc = run("mypy", "rpi_agent")
    assert proc.returncode == 0, proc.stdout + proc.stderr
