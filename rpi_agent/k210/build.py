"""Build K210 kmodels: V5 with nncase 1.9 (its own Python 3.10 venv); V4 is in :mod:`rpi_agent.k210.v4`.

The heavy toolchain never enters the faceagent process: nncase runs in ``<cache>/venvs/nncase``
(made by ``scripts/k210_env.sh``) through :mod:`nncase_worker`. This module prepares the inputs
(ONNX, uint8 calibration frames), runs the tool, checks the result in nncase's simulator against
the INT8 TFLite (:mod:`rpi_agent.k210.agreement`), and records what went in beside the output in
``build-info.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rpi_agent.detection.preprocess import fit_to_input
from rpi_agent.errors import ModelError, RuntimeMissingError
from rpi_agent.imaging.files import load_rgb
from rpi_agent.imaging.listing import iter_image_paths
from rpi_agent.paths import cache_dir, models_dir, shared_dir

log = logging.getLogger(__name__)

WORKER = Path(__file__).with_name("nncase_worker.py")
KPU_MAX_INPUT = (320, 240)  # the KPU's largest input (width, height)
UPSTREAM_ONNX = {
    "slim-320": "version-slim-320_without_postprocessing.onnx",
    "RFB-320": "version-RFB-320_without_postprocessing.onnx",
}
RESULT_MARK = "FACEAGENT-RESULT "


@dataclass(frozen=True, slots=True)
class KmodelBuild:
    """What one kmodel build produced.

    Attributes:
        name: Model variant, e.g. ``RFB-320``.
        kmodel_version: ``5`` (nncase 1.9) or ``4`` (ncc v0.2).
        path: The kmodel file.
        size_bytes: Its size.
        onnx: The ONNX it was compiled from.
        ops: Runtime op counts per target (``{"kpu": {...}, "cpu": {...}}``); empty for V4.
        seconds: Wall time of the compile.
        agreement: Faces (and landmarks) against the INT8 TFLite
            (:meth:`rpi_agent.k210.agreement.Agreement.to_dict`), when checked.
    """

    name: str
    kmodel_version: int
    path: Path
    size_bytes: int
    onnx: Path
    ops: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0
    agreement: dict[str, object] | None = None


def nncase_python() -> Path:
    """Interpreter of the nncase venv.

    Raises:
        RuntimeMissingError: The venv is missing (the message says how to make it).
    """
    python = cache_dir() / "venvs" / "nncase" / "bin" / "python"
    if not python.is_file():
        raise RuntimeMissingError(f"nncase venv not found at {python.parent.parent}: run scripts/k210_env.sh")
    return python


def run_worker(args: list[str], *, timeout: float = 1800.0) -> dict[str, object]:
    """Run :mod:`nncase_worker` in the nncase venv and return its JSON result.

    Raises:
        ModelError: The worker failed; the message carries its last error line.
    """
    cmd = [str(nncase_python()), str(WORKER), *args]
    log.debug("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARK) and proc.returncode == 0:
            return dict(json.loads(line[len(RESULT_MARK):]))
    lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    detail = lines[-1] if lines else f"exit code {proc.returncode}"
    raise ModelError(f"nncase {args[0]} failed: {detail}")


def input_size(name: str) -> tuple[int, int]:
    """``(width, height)`` of a variant from the manifest, checked against the KPU limit.

    The limit is the camera's 320x240 frame, except that a network whose sides must be multiples
    of 32 (RetinaFace's feature pyramid) may be 320x256: the frame then sits in the top-left
    corner of its input (nncase 1.9 keeps every convolution of that input on the KPU).

    Raises:
        ModelError: Unknown variant, or an input larger than the KPU takes.
    """
    from rpi_agent.models.manifest import load_manifest

    variant = load_manifest().variant(name)
    multiple = variant.priors.size_multiple
    max_height = -(-KPU_MAX_INPUT[1] // multiple) * multiple
    if variant.width > KPU_MAX_INPUT[0] or variant.height > max_height:
        raise ModelError(
            f"{name}: input {variant.width}x{variant.height} exceeds the K210 KPU maximum of "
            f"{KPU_MAX_INPUT[0]}x{max_height}; use a 320 variant or NAME@WxH within it"
        )
    return variant.width, variant.height


@dataclass(frozen=True, slots=True)
class NetworkInput:
    """What a variant's kmodel takes and gives: size, normalisation, landmarks, letterbox fill.

    Attributes:
        width / height: Input size.
        mean / std: The network sees ``(pixel - mean) / std`` of the uint8 RGB input; the landmark
            networks take raw pixels (0 / 1), their BGR mean is a subtraction inside the graph.
        landmarks: Whether the network has a landmark output.
        pad: RGB fill around a camera frame smaller than the input: what the network sees as zero.
    """

    width: int
    height: int
    mean: float
    std: float
    landmarks: bool
    pad: int | tuple[int, int, int]


def network_input(name: str) -> NetworkInput:
    """The input a variant's kmodel takes, from the manifest (see :class:`NetworkInput`)."""
    from rpi_agent.detection.layouts import LANDMARK_PAD_RGB
    from rpi_agent.models.manifest import load_manifest

    width, height = input_size(name)
    variant = load_manifest().variant(name)
    pad: int | tuple[int, int, int] = LANDMARK_PAD_RGB if variant.landmarks else 127
    return NetworkInput(width, height, variant.mean, variant.std, variant.landmarks, pad)


def resolve_onnx(name: str, onnx: Path | None = None) -> Path:
    """The network to compile: ``onnx`` if given, else the models build's ONNX, else the upstream one.

    Raises:
        ModelError: None of them exists.
    """
    if onnx is not None:
        if not onnx.is_file():
            raise ModelError(f"{onnx}: no such model file")
        return onnx
    built = models_dir() / name / f"{name}.onnx"
    if built.is_file():
        return built
    shared = shared_dir()
    if name in UPSTREAM_ONNX and shared is not None:
        upstream = shared / "models" / "upstream" / UPSTREAM_ONNX[name]
        if upstream.is_file():
            return upstream
    raise ModelError(f"{name}: no ONNX found ({built} missing): run `faceagent models build {name}` or pass --onnx")


def default_calibration_dir() -> Path:
    """The representative photos the TFLite build also calibrates on."""
    shared = shared_dir()
    if shared is None:
        raise ModelError("no calibration folder: ../shared/data/faces is missing, pass --calib DIR")
    return shared / "data" / "faces"


def calibration_frames(folder: Path, width: int, height: int,
                       pad: int | tuple[int, int, int] = 127) -> np.ndarray:
    """Photos as the K210 camera fills its 320x240 frame (stretched), placed in the network input.

    An input taller than the frame gets it in its top-left corner, the rest ``pad``.

    Returns:
        ``(N, height, width, 3)`` uint8 RGB.
    """
    from rpi_agent.k210.agreement import kmodel_inputs

    frame_w, frame_h = min(width, KPU_MAX_INPUT[0]), min(height, KPU_MAX_INPUT[1])
    frames = [fit_to_input(load_rgb(p), frame_w, frame_h, "stretch")[0] for p in iter_image_paths([folder])]
    return kmodel_inputs(np.stack(frames).astype(np.uint8), width, height, pad)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_build_info(out_dir: Path, key: str, info: dict[str, object]) -> None:
    """Add or replace ``key`` in ``build-info.json``, keeping what other builds wrote there."""
    path = out_dir / "build-info.json"
    data: dict[str, object] = {}
    if path.is_file():
        try:
            loaded = json.loads(path.read_text())
        except json.JSONDecodeError:
            log.warning("%s is not valid JSON; rewriting it", path)
        else:
            data = loaded if isinstance(loaded, dict) else {"previous": loaded}
    data[key] = info
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def kmodel_is_current(name: str, path: Path, *, key: str = "kmodel_v5") -> bool:
    """Whether ``path`` exists and build-info.json says it was compiled from today's ONNX."""
    info_path = path.parent / "build-info.json"
    if not path.is_file() or not info_path.is_file():
        return False
    try:
        entry = json.loads(info_path.read_text()).get(key)
        onnx = resolve_onnx(name)
    except (json.JSONDecodeError, AttributeError, ModelError):
        return False
    return (isinstance(entry, dict) and entry.get("onnx_sha256") == sha256_file(onnx)
            and entry.get("kmodel_sha256") == sha256_file(path)
            and entry.get("recipe_sha256") == sha256_file(WORKER))


def _info(build: KmodelBuild, calib: Path, frames: np.ndarray, tool: str,
          recipe: Path | None = None) -> dict[str, object]:
    info = asdict(build)
    info.update(path=str(build.path), onnx=str(build.onnx), onnx_sha256=sha256_file(build.onnx),
                kmodel_sha256=sha256_file(build.path), calibration_dir=str(calib),
                calibration_sha256=hashlib.sha256(frames.tobytes()).hexdigest(),
                calibration_samples=int(frames.shape[0]), tool=tool, recipe_sha256=sha256_file(recipe or WORKER),
                built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return info


def build_v5(name: str, *, onnx: Path | None = None, calib_dir: Path | None = None,
             out_dir: Path | None = None, verify: bool = True) -> KmodelBuild:
    """Compile ``name`` to a V5 kmodel with nncase 1.9, check it in nncase's simulator, record it.

    Raises:
        ModelError: A missing input, an nncase failure, or (``verify``) an agreement with the
            INT8 TFLite below F1 0.95 (the file is then removed).
    """
    net = network_input(name)
    src = resolve_onnx(name, onnx)
    if src.suffix != ".onnx":
        raise ModelError(f"{src}: the nncase 1.9 build compiles ONNX only (V4 builds take the TFLite)")
    calib = calib_dir or default_calibration_dir()
    frames = calibration_frames(calib, net.width, net.height, net.pad)
    out_dir = out_dir or models_dir() / name
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}-k210-v5.kmodel"
    log.info("compiling %s (%s) to %s with nncase 1.9 on %d calibration frames", name, src, target, len(frames))
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="faceagent-nncase-") as tmp:
        calib_npy = Path(tmp) / "calib.npy"
        np.save(calib_npy, np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))
        result = run_worker(["compile", str(src), str(target), str(calib_npy), "--dump", str(Path(tmp) / "dump"),
                             "--mean", repr(net.mean), "--std", repr(net.std)])
    seconds = round(time.monotonic() - start, 2)
    ops = result.get("ops")
    checked = _verify_v5(name, target, frames) if verify else None
    build = KmodelBuild(name, 5, target, target.stat().st_size, src, ops if isinstance(ops, dict) else {},
                        seconds, checked)
    info = _info(build, calib, frames, f"nncase {result.get('nncase')}")
    info.update(memory_bytes=result.get("memory_bytes", {}), input={"width": net.width, "height": net.height,
                "layout": "NCHW uint8 RGB", "mean": net.mean, "std": net.std, "landmarks": net.landmarks})
    if checked is not None:
        info["agreement_vs_int8_tflite"] = checked
    record_build_info(out_dir, "kmodel_v5", info)
    return build


def _verify_v5(name: str, target: Path, frames: np.ndarray) -> dict[str, object]:
    from rpi_agent.k210.agreement import MIN_F1, compare, record
    from rpi_agent.k210.simulator import simulate
    from rpi_agent.paths import model_file

    camera = frames[:, : KPU_MAX_INPUT[1], : KPU_MAX_INPUT[0]]  # the frame is the input's top-left corner
    result = compare(model_file(name, "int8"), simulate(target, frames), camera)
    if result.f1 < MIN_F1:
        target.unlink()
        raise ModelError(f"{name}: V5 kmodel agrees with the INT8 TFLite at F1 {result.f1} < {MIN_F1} in "
                         "nncase's simulator; not kept")
    return record(result, runtime="nncase 1.9 simulator", frames=len(frames))
