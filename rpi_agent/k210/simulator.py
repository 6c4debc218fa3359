"""Run a V5 kmodel on the host with nncase's simulator (in the nncase venv)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rpi_agent.errors import ModelError
from rpi_agent.k210.build import run_worker


@dataclass(frozen=True, slots=True)
class SimulatedOutputs:
    """Raw outputs of a batch of frames, in the model's (scores, boxes) order.

    Attributes:
        scores: ``(N, P, 2)`` float32 softmax scores (background, face).
        loc: ``(N, P, 4)`` float32 box offsets.
    """

    scores: np.ndarray
    loc: np.ndarray


def simulate(kmodel: Path, frames: np.ndarray) -> SimulatedOutputs:
    """Run every frame through the kmodel in one simulator process.

    Args:
        kmodel: A V5 kmodel from :func:`rpi_agent.k210.build.build_v5`.
        frames: ``(N, H, W, 3)`` uint8 RGB at the model's input size.

    Raises:
        ModelError: The kmodel is missing or the simulator failed.
    """
    if not kmodel.is_file():
        raise ModelError(f"{kmodel}: no such kmodel: run `faceagent k210 build`")
    with tempfile.TemporaryDirectory(prefix="faceagent-sim-") as tmp:
        frames_npy = Path(tmp) / "frames.npy"
        out_npz = Path(tmp) / "out.npz"
        np.save(frames_npy, np.ascontiguousarray(frames, dtype=np.uint8))
        run_worker(["simulate", str(kmodel), str(frames_npy), str(out_npz)])
        with np.load(out_npz) as data:
            scores, loc = data["out0"], data["out1"]
    if scores.shape[-1] != 2 or loc.shape[-1] != 4:
        raise ModelError(f"{kmodel}: outputs are not (scores ...x2, boxes ...x4): {scores.shape}, {loc.shape}")
    return SimulatedOutputs(scores.astype(np.float32), loc.astype(np.float32))
