"""Run a V5 kmodel on the host with nncase's simulator (in the nncase venv)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from rpi_agent.errors import ModelError
from rpi_agent.k210.agreement import KpuOutputs, split_outputs
from rpi_agent.k210.build import run_worker

# What simulate() returns: scores (N, P, 2), loc (N, P, 4) and landmarks (N, P, 10) or None.
SimulatedOutputs = KpuOutputs


def simulate(kmodel: Path, frames: np.ndarray) -> KpuOutputs:
    """Run every frame through the kmodel in one simulator process.

    Args:
        kmodel: A V5 kmodel from :func:`rpi_agent.k210.build.build_v5`.
        frames: ``(N, H, W, 3)`` uint8 RGB at the model's input size.

    Raises:
        ModelError: The kmodel is missing, the simulator failed, or the outputs are not a face
            model's (scores x2, boxes x4, optionally landmarks x10 per prior).
    """
    if not kmodel.is_file():
        raise ModelError(f"{kmodel}: no such kmodel: run `faceagent k210 build`")
    with tempfile.TemporaryDirectory(prefix="faceagent-sim-") as tmp:
        frames_npy = Path(tmp) / "frames.npy"
        out_npz = Path(tmp) / "out.npz"
        np.save(frames_npy, np.ascontiguousarray(frames, dtype=np.uint8))
        run_worker(["simulate", str(kmodel), str(frames_npy), str(out_npz)])
        with np.load(out_npz) as data:
            flat = [data[k].reshape(data[k].shape[0], -1).astype(np.float32)
                    for k in sorted(data.files, key=lambda k: int(k[3:]))]
    try:
        return split_outputs(flat)
    except ModelError as exc:
        raise ModelError(f"{kmodel}: {exc}") from None
