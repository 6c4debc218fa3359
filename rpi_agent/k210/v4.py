"""Build a kmodel V4 (the format released K210 firmware loads) and check it in nncase v0.2's runtime.

The build compiles the models build's FP32 TFLite with the ncc built from source (see
:mod:`rpi_agent.k210.ncc`), calibrated on the same photos as the INT8 TFLite. The check runs the
24 photos through the new file with ``ncc infer`` (v0.2's runtime and its KPU simulation) and
compares the faces with the Pi's INT8 TFLite pipeline. Size, main-memory need and that agreement
go into ``build-info.json`` under ``kmodel_v4``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from rpi_agent.errors import ModelError
from rpi_agent.k210 import kmodel as kmodel_format
from rpi_agent.k210 import ncc as ncc_module
from rpi_agent.k210.agreement import (  # noqa: F401  (split_outputs, Agreement: this module's API since V4)
    AGREEMENT_IOU,
    AGREEMENT_THRESHOLD,
    MIN_F1,
    Agreement,
    compare,
    record,
    split_outputs,
)
from rpi_agent.k210.build import (
    KPU_MAX_INPUT,
    KmodelBuild,
    _info,
    calibration_frames,
    default_calibration_dir,
    network_input,
    record_build_info,
    sha256_file,
)
from rpi_agent.k210.ncc import NCC_VERSION, check_ncc, compile_tflite, default_ncc, infer, ncc_normalisation
from rpi_agent.paths import model_file, models_dir

log = logging.getLogger(__name__)


def agreement(name: str, kmodel: Path, frames: np.ndarray, *, ncc: Path) -> Agreement:
    """Run ``frames`` through the V4 kmodel in v0.2's runtime and through the INT8 TFLite; match faces and landmarks.

    Args:
        frames: ``(N, H, W, 3)`` uint8 at the kmodel's input (camera frames, placed as
            :func:`rpi_agent.k210.build.calibration_frames` places them).

    Raises:
        ModelError: The INT8 TFLite is missing or either runtime failed.
    """
    outputs = split_outputs(infer(ncc, kmodel, frames))
    return compare(model_file(name, "int8"), outputs, frames[:, : KPU_MAX_INPUT[1], : KPU_MAX_INPUT[0]])


def resolve_source(name: str, source: Path | None) -> Path:
    """The network ncc compiles: ``source`` or the models build's FP32 TFLite.

    Raises:
        ModelError: It does not exist.
    """
    path = source or model_file(name, "fp32")
    if path.suffix != ".tflite":
        raise ModelError(f"{path}: ncc {NCC_VERSION} reads TFLite (and Caffe) only, not {path.suffix or 'this'}")
    if not path.is_file():
        raise ModelError(f"{path}: no such model file" + ("" if source else f": run `faceagent models build {name}`"))
    return path


def build_v4(name: str, *, ncc: Path | None = None, source: Path | None = None, calib_dir: Path | None = None,
             out_dir: Path | None = None, verify: bool = True) -> KmodelBuild:
    """Compile ``name`` to ``NAME-k210-v4.kmodel`` with ncc v0.2.0-beta2, check it, record it.

    Raises:
        ModelError: A missing input, an ncc failure, or an agreement below F1 0.95 (the file is
            then removed, so nothing unverified is left to flash).
        RuntimeMissingError: ncc has not been built (``scripts/k210/build_ncc.sh``).
    """
    net = network_input(name)
    if (net.width, net.height) != KPU_MAX_INPUT:
        # main.py hands the KPU the camera's 320x240 frame as it is; a V4 file is for the board.
        raise ModelError(f"{name}: input {net.width}x{net.height} is not the camera's {KPU_MAX_INPUT[0]}x"
                         f"{KPU_MAX_INPUT[1]} frame the board script feeds a V4 kmodel; build --kmodel 5 "
                         "(nncase 1.9, host simulation) instead")
    ncc = check_ncc(ncc) if ncc is not None else default_ncc()
    src = resolve_source(name, source)
    calib = calib_dir or default_calibration_dir()
    frames = calibration_frames(calib, net.width, net.height, net.pad)
    out_dir = out_dir or models_dir() / name
    target = out_dir / f"{name}-k210-v4.kmodel"
    log.info("compiling %s (%s) to %s with ncc %s on %d calibration frames", name, src, target, NCC_VERSION,
             len(frames))
    start = time.monotonic()
    _, padded = compile_tflite(ncc, src, target, frames, normalisation=ncc_normalisation(net.mean, net.std))
    seconds = round(time.monotonic() - start, 2)
    header = kmodel_format.read(target)
    build = KmodelBuild(name, 4, target, target.stat().st_size, src, header.op_split(), seconds)
    info = _info(build, calib, frames, f"ncc {NCC_VERSION} ({ncc})", recipe=Path(ncc_module.__file__))
    info.update(source=str(src), source_sha256=sha256_file(src), ncc_sha256=sha256_file(ncc),
                main_mem_bytes=header.main_mem_bytes, constants_bytes=header.constants_bytes,
                runtime_nodes=header.nodes, padding_completed_bytes=padded,
                outputs=[{"memory": t.memory, "bytes": t.size} for t in header.outputs])
    checked = None
    if verify:
        result = agreement(name, target, frames, ncc=ncc)
        checked = record(result, runtime=f"nncase {NCC_VERSION} (ncc infer, host KPU simulation)",
                         frames=len(frames))
        info["agreement_vs_int8_tflite"] = checked
        if result.f1 < MIN_F1:
            target.unlink()
            raise ModelError(_refusal(name, result, header.op_split()))
        build = KmodelBuild(name, 4, target, target.stat().st_size, src, header.op_split(), seconds, checked)
    record_build_info(out_dir, "kmodel_v4", info)
    return build


def _refusal(name: str, result: Agreement, ops: dict[str, dict[str, int]]) -> str:
    cpu_convs = ops.get("cpu", {}).get("Conv2D", 0)
    why = (f"; it runs {cpu_convs} convolutions as float CPU Conv2D (ncc {NCC_VERSION} keeps dilated "
           "convolutions off the KPU)") if cpu_convs else ""
    return (f"{name}: the V4 kmodel in nncase v0.2's runtime finds {result.kmodel_faces} faces where the INT8 "
            f"TFLite finds {result.tflite_faces} ({result.matched} matched, F1 {result.f1} < {MIN_F1}){why}; "
            "not kept")


def v4_is_current(name: str, path: Path, *, ncc: Path) -> bool:
    """Whether ``path`` exists and build-info.json says today's ncc built it from today's FP32 TFLite and passed."""
    import json

    info_path = path.parent / "build-info.json"
    if not path.is_file() or not info_path.is_file():
        return False
    try:
        entry = json.loads(info_path.read_text()).get("kmodel_v4")
        source = resolve_source(name, None)
    except (json.JSONDecodeError, AttributeError, ModelError):
        return False
    return (isinstance(entry, dict) and entry.get("kmodel_sha256") == sha256_file(path)
            and entry.get("source_sha256") == sha256_file(source) and entry.get("ncc_sha256") == sha256_file(ncc)
            and isinstance(entry.get("agreement_vs_int8_tflite"), dict))
