"""The build-time virtualenv (torch, onnx2tf, tensorflow), separate from the runtime.

Its pins (``requirements-build.txt`` beside this module) demand numpy 1.26 and weigh about
3 GB, so it lives at ``<cache>/venvs/build``; a stamp file records the SHA-256 of the
requirements it was made from, and a changed file rebuilds it. Standard library only:
``scripts/build_env.sh`` runs this module with a bare interpreter.

Usage: ``python -m rpi_agent.models.buildenv`` prints the venv's interpreter path.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import venv
from importlib import resources
from pathlib import Path

from rpi_agent import paths
from rpi_agent.errors import RuntimeMissingError

logger = logging.getLogger(__name__)

PYTHON_ENV = "FACEAGENT_BUILD_PYTHON"
STAMP = ".faceagent-requirements.sha256"
# pip warns once per package about local index folders that lack it: noise, not a problem.
_PIP_NOISE = "is ignored: it is neither a file nor a directory"
_CUDA_CHECK = "import sys, torch; sys.exit(torch.version.cuda is not None)"


def requirements_text() -> str:
    """The pinned requirements of the build venv."""
    return resources.files("rpi_agent.models").joinpath("requirements-build.txt").read_text(encoding="utf-8")


def venv_dir() -> Path:
    """Where the build venv lives."""
    return paths.cache_dir() / "venvs" / "build"


def venv_python() -> Path:
    """Interpreter of the build venv (``$FACEAGENT_BUILD_PYTHON`` overrides)."""
    override = os.environ.get(PYTHON_ENV)
    return Path(override) if override else venv_dir() / "bin" / "python"


def is_current() -> bool:
    """Whether the build venv exists and matches the current requirements."""
    if os.environ.get(PYTHON_ENV):
        return Path(os.environ[PYTHON_ENV]).is_file()
    stamp = venv_dir() / STAMP
    want = hashlib.sha256(requirements_text().encode()).hexdigest()
    return venv_python().is_file() and stamp.is_file() and stamp.read_text().strip() == want


def ensure_build_env() -> Path:
    """Create or refresh the build venv when needed; returns its interpreter.

    Raises:
        RuntimeMissingError: pip could not install the pinned toolchain, or it resolved to a
            CUDA build of torch.
    """
    if is_current():
        return venv_python()
    if os.environ.get(PYTHON_ENV):
        raise RuntimeMissingError(f"${PYTHON_ENV} points to {os.environ[PYTHON_ENV]}, which does not exist")
    target = venv_dir()
    logger.warning("creating the build venv in %s (one time, about 3 GB and 2 minutes)", target)
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(target)
    python = target / "bin" / "python"
    reqs = target / "requirements-build.txt"
    reqs.write_text(requirements_text())
    # One resolve for everything, so pip sees onnx2tf's exact pins and torch together. Without
    # PYTHONPATH: a checkout on it would show pip this package as installed, minus its runtime deps.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for args in (["--upgrade", "pip"], ["--prefer-binary", "-r", str(reqs)]):
        result = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *args], check=False,
                                stderr=subprocess.PIPE, text=True, env=env)
        for line in result.stderr.splitlines():
            if _PIP_NOISE not in line:
                print(line, file=sys.stderr)
        if result.returncode != 0:
            raise RuntimeMissingError(f"pip could not install the build toolchain into {target} "
                                      f"(exit {result.returncode}); see the pip output above")
    if subprocess.run([str(python), "-c", _CUDA_CHECK], check=False).returncode != 0:
        raise RuntimeMissingError("the build venv got a CUDA build of torch; expected the CPU build of 2.13.0")
    (target / STAMP).write_text(hashlib.sha256(requirements_text().encode()).hexdigest() + "\n")
    return python


def main() -> int:
    """Entry point of ``python -m rpi_agent.models.buildenv``."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(ensure_build_env())
    except RuntimeMissingError as exc:
        print(f"build_env: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
