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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rpi_agent.errors import ModelError
from rpi_agent.geometry import iou_matrix, match_by_score
from rpi_agent.k210 import kmodel as kmodel_format
from rpi_agent.k210 import ncc as ncc_module
from rpi_agent.k210.build import (
    KmodelBuild,
    _info,
    calibration_frames,
    default_calibration_dir,
    input_size,
    record_build_info,
    sha256_file,
)
from rpi_agent.k210.ncc import NCC_VERSION, check_ncc, compile_tflite, default_ncc, infer
from rpi_agent.paths import model_file, models_dir

log = logging.getLogger(__name__)

AGREEMENT_THRESHOLD = 0.6  # score threshold of the agreement check
AGREEMENT_IOU = 0.5
MIN_F1 = 0.95


@dataclass(frozen=True, slots=True)
class Agreement:
    """Faces of the V4 kmodel (v0.2 runtime) against the INT8 TFLite on the same frames."""

    kmodel_faces: int
    tflite_faces: int
    matched: int
    f1: float


def split_outputs(outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(N, P, 2)`` scores and ``(N, P, 4)`` box offsets from ncc's flat outputs, whatever their order.

    Raises:
        ModelError: The outputs are not one 2-per-prior and one 4-per-prior map.
    """
    if len(outputs) != 2:
        raise ModelError(f"expected 2 outputs (scores, boxes), got {len(outputs)}")
    a, b = outputs
    if a.shape[1] * 2 == b.shape[1]:
        scores, loc = a, b
    elif b.shape[1] * 2 == a.shape[1]:
        scores, loc = b, a
    else:
        raise ModelError(f"outputs of {a.shape[1]} and {b.shape[1]} values are not scores x2 and boxes x4")
    n = scores.shape[0]
    return scores.reshape(n, -1, 2), loc.reshape(n, -1, 4)


def agreement(name: str, kmodel: Path, frames: np.ndarray, *, ncc: Path) -> Agreement:
    """Run ``frames`` through the V4 kmodel in v0.2's runtime and through the INT8 TFLite; match the faces.

    Raises:
        ModelError: The INT8 TFLite is missing or either runtime failed.
    """
    from rpi_agent.detection.decoder import DecodeOptions, postprocess
    from rpi_agent.detection.face_detector import FaceDetector
    from rpi_agent.detection.priors import PriorSpec, generate_priors

    int8 = model_file(name, "int8")
    if not int8.is_file():
        raise ModelError(f"{int8} missing: run `faceagent models build {name}` first")
    height, width = frames.shape[1:3]
    spec = PriorSpec(width, height)
    priors = generate_priors(spec)
    options = DecodeOptions(score_threshold=AGREEMENT_THRESHOLD)
    scale = np.array([width, height, width, height], dtype=np.float32)
    scores, loc = split_outputs(infer(ncc, kmodel, frames))
    detector = FaceDetector.from_model(int8, resize="stretch", options=options)
    mine = theirs = tp = 0
    for i, frame in enumerate(frames):
        boxes, best = postprocess(scores[i][:, 1], loc[i], priors, spec, options=options)
        reference = np.array([d.box for d in detector.detect(frame).faces], dtype=np.float32).reshape(-1, 4)
        mine += len(boxes)
        theirs += len(reference)
        # Greedy one-to-one, best kmodel score first.
        tp += len(match_by_score(iou_matrix(boxes * scale, reference), best, AGREEMENT_IOU))
    f1 = 2 * tp / (mine + theirs) if mine + theirs else 1.0
    return Agreement(mine, theirs, tp, round(f1, 4))


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
    ncc = check_ncc(ncc) if ncc is not None else default_ncc()
    width, height = input_size(name)
    src = resolve_source(name, source)
    calib = calib_dir or default_calibration_dir()
    frames = calibration_frames(calib, width, height)
    out_dir = out_dir or models_dir() / name
    target = out_dir / f"{name}-k210-v4.kmodel"
    log.info("compiling %s (%s) to %s with ncc %s on %d calibration frames", name, src, target, NCC_VERSION,
             len(frames))
    start = time.monotonic()
    compile_tflite(ncc, src, target, frames)
    seconds = round(time.monotonic() - start, 2)
    header = kmodel_format.read(target)
    build = KmodelBuild(name, 4, target, target.stat().st_size, src, {}, seconds)
    info = _info(build, calib, frames, f"ncc {NCC_VERSION} ({ncc})", recipe=Path(ncc_module.__file__))
    info.update(source=str(src), source_sha256=sha256_file(src), ncc_sha256=sha256_file(ncc),
                main_mem_bytes=header.main_mem_bytes, constants_bytes=header.constants_bytes,
                runtime_nodes=header.nodes,
                outputs=[{"memory": t.memory, "bytes": t.size} for t in header.outputs])
    if verify:
        result = agreement(name, target, frames, ncc=ncc)
        info["agreement_vs_int8_tflite"] = {
            "runtime": f"nncase {NCC_VERSION} (ncc infer, host KPU simulation)", "frames": int(len(frames)),
            "score_threshold": AGREEMENT_THRESHOLD, "iou": AGREEMENT_IOU, "kmodel_faces": result.kmodel_faces,
            "tflite_faces": result.tflite_faces, "matched": result.matched, "f1": result.f1}
        if result.f1 < MIN_F1:
            target.unlink()
            raise ModelError(f"{name}: V4 kmodel agrees with the INT8 TFLite at F1 {result.f1} < {MIN_F1}; "
                             "not kept")
    record_build_info(out_dir, "kmodel_v4", info)
    return build


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
