"""kmodel V4 with nncase v0.2.0-beta2's ``ncc``: compile from TFLite, run on the host.

``ncc`` is built from the pinned sources by ``scripts/k210/build_ncc.sh`` (Debian toolchain, no
conan) into ``<cache>/k210-ncc/<key>/bin/ncc``; ``<cache>/k210-ncc/current`` points at the
newest build. ``ncc infer`` runs a kmodel in nncase v0.2's own runtime with its host simulation of
the KPU, the same C++ runtime MaixPy and CanMV carry: it is how a V4 file is checked here.

beta2 reads TFLite and Caffe only (ONNX came in beta3), and the MaixPy users who reported
beta3/beta4 kmodels freezing the board found beta2's working, so the FP32 TFLite of the models
build goes in. Both the calibration and the inference data are raw tensors: this ncc is built
without OpenCV, and handing it frames already at the input size keeps its resize out anyway.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from rpi_agent.errors import ModelError, RuntimeMissingError
from rpi_agent.k210 import kmodel as kmodel_format
from rpi_agent.paths import cache_dir

log = logging.getLogger(__name__)

# ncc scales input bytes to [0, 1] before mean/std: (p / 255 - 127 / 255) / (128 / 255) = (p - 127) / 128,
# the normalisation the Ultra-Light networks were trained with (see :func:`ncc_normalisation`).
NCC_MEAN = "0.49803922"
NCC_STD = "0.50196078"
NCC_VERSION = "v0.2.0-beta2"
BUILD_SCRIPT = "scripts/k210/build_ncc.sh"


def default_ncc() -> Path:
    """The ncc that ``scripts/k210/build_ncc.sh`` built (``$FACEAGENT_NCC`` overrides).

    Raises:
        RuntimeMissingError: It has not been built yet.
    """
    env = os.environ.get("FACEAGENT_NCC")
    path = Path(env) if env else cache_dir() / "k210-ncc" / "current" / "bin" / "ncc"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise RuntimeMissingError(f"ncc {NCC_VERSION} not found at {path}: run {BUILD_SCRIPT} (or scripts/k210_ci.sh)")
    return path


def check_ncc(ncc: Path) -> Path:
    """``ncc`` itself if it is an executable file.

    Raises:
        ModelError: It is not.
    """
    if not (ncc.is_file() and os.access(ncc, os.X_OK)):
        raise ModelError(f"{ncc}: not an executable ncc binary (build one with {BUILD_SCRIPT})")
    return ncc


def _run(cmd: list[str], what: str, *, timeout: float = 1800.0) -> str:
    log.info("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except OSError as exc:
        raise ModelError(f"cannot run {cmd[0]}: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        raise ModelError(f"ncc {what} failed: {lines[-1] if lines else f'exit code {proc.returncode}'}")
    return proc.stdout


def ncc_normalisation(mean: float, std: float) -> tuple[str, str]:
    """ncc's ``--input-mean``/``--input-std`` for a network that takes ``(pixel - mean) / std``.

    ncc divides the input bytes by 255 first, so both are divided by 255: Ultra-Light's 127 / 128
    become 0.49803922 / 0.50196078, the landmark networks' raw pixels (0 / 1) 0 / 0.00392157.
    """
    return f"{mean / 255.0:.8f}", f"{std / 255.0:.8f}"


def write_calibration(frames: np.ndarray, folder: Path) -> Path:
    """``(N, H, W, 3)`` uint8 RGB frames as ncc's raw float dataset: CHW float32 in [0, 1], one file each."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        chw = np.ascontiguousarray(frame.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)
        (folder / f"{i:04d}.bin").write_bytes(chw.astype("<f4").tobytes())
    return folder


def compile_tflite(ncc: Path, source: Path, target: Path, frames: np.ndarray, *,
                   calibrate_method: str = "l2", normalisation: tuple[str, str] = (NCC_MEAN, NCC_STD)
                   ) -> tuple[str, int]:
    """Compile a float TFLite network to a uint8-input V4 kmodel for the K210.

    Returns:
        ncc's own report (its SUMMARY with the memory use), and how many bytes of the last node
        body's padding ncc left unwritten and this function appended (see
        :func:`rpi_agent.k210.kmodel.missing_padding`).

    Raises:
        ModelError: The source is not a .tflite, or ncc failed (its last line is in the message).
    """
    if source.suffix != ".tflite":
        raise ModelError(f"{source}: ncc {NCC_VERSION} reads TFLite (and Caffe) only, not {source.suffix or 'this'}")
    with tempfile.TemporaryDirectory(prefix="faceagent-ncc-") as tmp:
        dataset = write_calibration(frames, Path(tmp) / "calib")
        tmp_target = Path(tmp) / "out.kmodel"
        cmd = [str(ncc), "compile", str(source), str(tmp_target), "-i", "tflite", "-o", "kmodel", "-t", "k210",
               "--dataset", str(dataset), "--dataset-format", "raw", "--inference-type", "uint8",
               "--input-mean", normalisation[0], "--input-std", normalisation[1],
               "--calibrate-method", calibrate_method,
               "--max-allocator-solve-secs", "0"]
        report = _run(cmd, "compile")
        if not tmp_target.is_file():
            raise ModelError("ncc compile wrote no kmodel")
        data = tmp_target.read_bytes()
        gap = kmodel_format.missing_padding(data)
        if gap:
            # ncc seeks over the last node body's alignment padding instead of writing it.
            log.info("ncc left out the last node's %d padding bytes; completing the file with zeros", gap)
            tmp_target.write_bytes(data + bytes(gap))
        try:  # refuse to publish a file the runtime could not read whole
            kmodel_format.parse(tmp_target.read_bytes())
        except ModelError as exc:
            raise ModelError(f"ncc compile of {source.name} wrote a broken kmodel ({exc}); not kept") from None
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_target, target)
    return report, gap


def infer(ncc: Path, kmodel: Path, frames: np.ndarray) -> list[np.ndarray]:
    """Run frames through a V4 kmodel in nncase v0.2's runtime (host KPU simulation).

    Args:
        ncc: The ncc binary.
        kmodel: A V4 kmodel with a uint8 input.
        frames: ``(N, H, W, 3)`` uint8 RGB at the model's input size.

    Returns:
        One array per model output, ``(N, elements)`` float32, in the model's output order.

    Raises:
        ModelError: Not a (whole) V4 file, a frame of the wrong size, or the runtime failed.
    """
    info = kmodel_format.read(kmodel)
    kmodel_format.require_version(info, 4, kmodel)
    shape = info.inputs[0].shape
    if frames.shape[1:] != (shape[2], shape[3], shape[1]) or frames.dtype != np.uint8:
        raise ModelError(f"{kmodel}: input is {shape[3]}x{shape[2]}x{shape[1]} uint8, frames are "
                         f"{frames.shape[1:]} {frames.dtype}")
    if any(t.datatype_bytes != 4 for t in info.outputs):
        raise ModelError(f"{kmodel}: outputs are not float32")
    with tempfile.TemporaryDirectory(prefix="faceagent-ncc-infer-") as tmp:
        data, out = Path(tmp) / "in", Path(tmp) / "out"
        data.mkdir()
        for i, frame in enumerate(frames):
            (data / f"{i:05d}.raw").write_bytes(np.ascontiguousarray(frame.transpose(2, 0, 1)).tobytes())
        _run([str(ncc), "infer", str(kmodel), str(out), "--dataset", str(data), "--dataset-format", "raw"], "infer")
        sizes = [t.size // 4 for t in info.outputs]
        results: list[list[np.ndarray]] = [[] for _ in sizes]
        for i in range(len(frames)):
            path = out / f"{i:05d}.bin"
            if not path.is_file():
                raise ModelError(f"ncc infer wrote no output for frame {i}")
            flat = np.frombuffer(path.read_bytes(), dtype="<f4")
            if flat.size != sum(sizes):
                raise ModelError(f"ncc infer: frame {i} has {flat.size} output values, expected {sum(sizes)}")
            for k, part in enumerate(np.split(flat, np.cumsum(sizes)[:-1])):
                results[k].append(part)
    return [np.stack(r).astype(np.float32) for r in results]
