"""Run MicroPython code on the host: the real interpreter, compiled to WebAssembly, under node.

Used to check the board-side code in ``k210/`` (MaixPy is MicroPython) without a board. The
interpreter is the npm package ``@micropython/micropython-webassembly-pyscript``, installed by
``scripts/k210_ci.sh`` into ``<cache>/node``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from rpi_agent.errors import FaceAgentError, RuntimeMissingError
from rpi_agent.paths import cache_dir

PACKAGE = "@micropython/micropython-webassembly-pyscript"
RUNNER = Path(__file__).with_name("mp_runner.mjs")


class MicroPythonError(FaceAgentError, RuntimeError):
    """MicroPython code raised an uncaught exception (the message carries its last line)."""


def micropython_mjs() -> Path:
    """The interpreter's entry module (``$FACEAGENT_MICROPYTHON_MJS`` overrides).

    Raises:
        RuntimeMissingError: node or the npm package is missing.
    """
    if shutil.which("node") is None:
        raise RuntimeMissingError("node is not installed: apt-get install nodejs npm")
    env = os.environ.get("FACEAGENT_MICROPYTHON_MJS")
    mjs = Path(env) if env else cache_dir() / "node" / "node_modules" / PACKAGE / "micropython.mjs"
    if not mjs.is_file():
        raise RuntimeMissingError(f"MicroPython (npm {PACKAGE}) not found at {mjs}: run scripts/k210_ci.sh")
    return mjs


def run_micropython(
    script: str,
    *,
    files: dict[str, Path] | None = None,
    sys_path: list[str] | None = None,
    heapsize: int = 16 * 1024 * 1024,
    timeout: float = 600.0,
) -> str:
    """Run ``script`` as ``__main__`` under MicroPython and return what it printed.

    Args:
        script: MicroPython source.
        files: Guest path → host file, copied into the interpreter's in-memory file system.
        sys_path: Guest folders put in front of ``sys.path``.
        heapsize: Initial GC heap in bytes (this port grows it on demand).
        timeout: Seconds before the run is abandoned.

    Raises:
        MicroPythonError: The script raised.
    """
    with tempfile.TemporaryDirectory(prefix="faceagent-mp-") as tmp:
        script_path = Path(tmp) / "script.py"
        script_path.write_text(script)
        job = {"micropython": str(micropython_mjs()), "heapsize": heapsize, "script": str(script_path),
               "files": {guest: str(host) for guest, host in (files or {}).items()}, "path": sys_path or []}
        job_path = Path(tmp) / "job.json"
        job_path.write_text(json.dumps(job))
        proc = subprocess.run(["node", str(RUNNER), str(job_path)], capture_output=True, text=True,
                              timeout=timeout, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise MicroPythonError(lines[-1] if lines else f"node exited with {proc.returncode}")
    return proc.stdout
