"""Build worker: runs inside the build venv, started by ``faceagent models build``.

Usage: ``python -m rpi_agent.models._build_worker JOB.json``

The job file (written by ``rpi_agent.models.build``) lists the variants to build. For each,
the worker checks the recorded build-info (cache hit unless forced), then converts
``.pth -> torch -> ONNX -> SavedModel + FP32 TFLite -> INT8 TFLite`` and writes
``build-info.json`` beside the outputs. Progress goes to stdout one line per step; the
converters' own chatter goes to ``build.log`` in the output directory. On failure the last
stderr line is a one-line reason and the exit status is 1.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rpi_agent.models import calibration

TOOLS = ("torch", "onnx2tf", "tensorflow", "onnx", "onnxruntime", "numpy", "opencv-python")
STEPS = 5
CORNER_CALIBRATION_SCALES = (1.0, 0.5, 2.0, 3.0)
_RECIPE_MODULES = ("networks.py", "landmark_networks.py", "equalize.py", "convert.py", "calibration.py",
                   "_build_worker.py")


def _say(name: str, step: int, text: str) -> None:
    print(f"[{name}] {step}/{STEPS} {text}", flush=True)


def tool_versions() -> dict[str, str]:
    """Versions of the conversion toolchain in this venv."""
    out = {}
    for tool in TOOLS:
        try:
            out[tool] = importlib.metadata.version(tool)
        except importlib.metadata.PackageNotFoundError:
            out[tool] = "absent"
    return out


def recipe_hash() -> str:
    """SHA-256 of the build code itself, so a changed recipe is never a cache hit."""
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in _RECIPE_MODULES:
        digest.update((here / name).read_bytes())
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_inputs(job: dict[str, Any], calib_hash: str, calib_count: int) -> dict[str, Any]:
    """Everything that determines the outputs; equal inputs mean a cache hit."""
    return {
        "name": job["name"], "arch": job["arch"], "input": [job["width"], job["height"]],
        "weights": job["weights"], "weights_sha256": job["weights_sha256"],
        "mean": job["mean"], "std": job["std"],
        **({"landmarks": True, "folded_mean_bgr": job["folded_mean_bgr"]} if job.get("landmarks") else {}),
        **({} if job.get("int8_per_channel", True) else {"int8_per_channel": False}),
        **({"equalize": True} if job.get("equalize") else {}),
        **({"calibration_scales": job["calibration_scales"]} if job.get("calibration_scales") else {}),
        "calibration_sha256": calib_hash, "calibration_images": calib_count,
        "recipe_sha256": recipe_hash(), "tools": tool_versions(),
    }


def _cache_hit(out_dir: Path, name: str, inputs: dict[str, Any]) -> bool:
    info_path = out_dir / "build-info.json"
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        return False
    files = [out_dir / file_name for file_name in _targets(name, inputs).values()]
    return info.get("inputs") == inputs and all(f.is_file() for f in files)


def _targets(name: str, inputs: dict[str, Any]) -> dict[str, str]:
    """The output files of a build, by kind."""
    targets = {"int8": f"{name}-int8.tflite", "fp32": f"{name}-fp32.tflite", "onnx": f"{name}.onnx"}
    if inputs.get("landmarks"):
        targets["onnx_any_size"] = f"{name}-any-size.onnx"
    return targets


def _other_builds(info_path: Path) -> dict[str, Any]:
    """Entries other builders recorded (the K210 kmodels); they check their own ONNX hash for staleness."""
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        return {}
    return {key: value for key, value in info.items() if key.startswith("kmodel")}


def _convert(job: dict[str, Any], calib_files: list[Path], tmp: Path, log_path: Path) -> dict[str, Path]:
    """The conversion chain; returns the staged ``int8``, ``fp32``, ``onnx`` (``onnx_any_size``) files in ``tmp``."""
    from rpi_agent.models import convert

    name, width, height = job["name"], job["width"], job["height"]
    _say(name, 1, f"loading {job['weights']} into the {job['arch']} network")
    net = _load_net(job)
    _say(name, 2, f"exporting ONNX (opset {convert.ONNX_OPSET}, input 1x3x{height}x{width})")
    onnx_path = tmp / "model.onnx"
    outputs = convert.LANDMARK_OUTPUT_NAMES if job.get("landmarks") else convert.OUTPUT_NAMES
    with convert.redirect_fds(log_path):
        convert.export_onnx(net, onnx_path, width=width, height=height, outputs=outputs)
    staged = {"onnx": onnx_path, **(_export_any_size(job, net, tmp, log_path) if job.get("landmarks") else {})}
    _say(name, 3, "onnx2tf: SavedModel and FP32 TFLite")
    calibration.write_onnx2tf_sample(calib_files, tmp / calibration.ONNX2TF_SAMPLE_NAME)
    saved = tmp / "saved_model"
    cwd = Path.cwd()
    os.chdir(tmp)  # onnx2tf reads its sample array from the working directory
    try:
        with convert.redirect_fds(log_path):
            fp32 = convert.onnx_to_saved_model(onnx_path, saved)
    finally:
        os.chdir(cwd)
    samples = calibration.load_batches(calib_files, width=width, height=height, mean=job["mean"], std=job["std"],
                                       **_calibration_fit(job))
    _say(name, 4, f"INT8 calibration on {len(samples)} samples of {len(calib_files)} images")
    with convert.redirect_fds(log_path):
        int8 = tmp / "int8.tflite"
        int8.write_bytes(convert.quantize_full_int8(saved, samples, per_channel=job.get("int8_per_channel", True)))
    return {"int8": int8, "fp32": fp32, **staged}


def _export_any_size(job: dict[str, Any], net: Any, tmp: Path, log_path: Path) -> dict[str, Path]:
    """A landmark network's FP32 ONNX with a free input size (after the fixed-size export: it changes ``net``).

    Only for evaluating each image at its own size, the way upstream's figures were made
    (``faceagent eval widerface --resize native``); nothing is converted from it.
    """
    from rpi_agent.models import convert
    from rpi_agent.models.landmark_networks import allow_any_size

    target = tmp / "any-size.onnx"
    with convert.redirect_fds(log_path):
        convert.export_onnx(allow_any_size(net), target, width=job["width"], height=job["height"],
                            outputs=convert.LANDMARK_OUTPUT_NAMES, any_size=True)
    return {"onnx_any_size": target}


def _calibration_fit(job: dict[str, Any]) -> dict[str, Any]:
    """How calibration photos are fitted: as the runtime fits frames to the model.

    The landmark networks run with the frame in the top-left corner, padded with their training
    mean; calibrating on stretched photos instead gives activation ranges the runtime never
    sees. Half-size copies add the small faces of a wide view, 2x and 3x close-ups the large
    faces the crowd photos lack (their activations would otherwise be clipped).
    """
    if not job.get("landmarks"):
        return {}
    pad = tuple(round(v) for v in reversed(job["folded_mean_bgr"]))
    return {"corner_pad": pad, "scales": tuple(job.get("calibration_scales") or CORNER_CALIBRATION_SCALES)}


def _load_net(job: dict[str, Any]) -> Any:
    """The network with its weights loaded strictly; landmark nets wrapped to take raw RGB pixels."""
    from rpi_agent.models import landmark_networks, networks

    if not job.get("landmarks"):
        return networks.load_network(job["arch"], job["weights_path"])
    net = landmark_networks.load_landmark_network(job["arch"], job["weights_path"])
    if tuple(job["folded_mean_bgr"]) != landmark_networks.TRAINING_MEAN_BGR:
        raise ValueError(f"{job['name']}: folded mean {job['folded_mean_bgr']} is not the one the network folds")
    if job.get("equalize"):
        from rpi_agent.models.equalize import equalize_separable

        equalize_separable(net)
    return landmark_networks.RawPixelInput(net)


def _check(job: dict[str, Any], staged: dict[str, Path], log_path: Path) -> dict[str, Any]:
    from rpi_agent.models import convert

    _say(job["name"], 5, "checking the INT8 interface and writing outputs")
    with convert.redirect_fds(log_path):
        io = {key: convert.describe_tflite(staged[key]) for key in ("int8", "fp32")}
    problems = convert.check_int8_io(io["int8"], num_priors=job["num_priors"], width=job["width"],
                                     height=job["height"], mean=job["mean"], std=job["std"],
                                     landmarks=bool(job.get("landmarks")))
    if problems:
        raise RuntimeError(f"{job['name']}: INT8 model is not as expected: {'; '.join(problems)}")
    return io


def build_one(job: dict[str, Any], *, calib_files: list[Path], calib_hash: str, force: bool,
              command: str) -> dict[str, Any]:
    """Build one variant into ``job['out_dir']``; returns its build-info."""
    name = job["name"]
    out_dir = Path(job["out_dir"])
    inputs = build_inputs(job, calib_hash, len(calib_files))
    if not force and _cache_hit(out_dir, name, inputs):
        print(f"[{name}] up to date (cache hit), skipped; --force rebuilds", flush=True)
        return dict(json.loads((out_dir / "build-info.json").read_text()))
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "build.log"
    log_path.write_text("")
    targets = {key: out_dir / file_name for key, file_name in _targets(name, inputs).items()}
    with tempfile.TemporaryDirectory(prefix="faceagent-build-") as tmp:
        staged = _convert(job, calib_files, Path(tmp), log_path)
        io = _check(job, staged, log_path)
        kept = _other_builds(out_dir / "build-info.json")
        (out_dir / "build-info.json").unlink(missing_ok=True)  # no stale record beside new files
        for key, path in targets.items():
            shutil.copyfile(staged[key], path)
    info = {
        "name": name, "inputs": inputs, "command": command,
        "calibration_dir": job["calib_dir"], "weights_path": job["weights_path"],
        "files": {key: {"path": str(path), "bytes": path.stat().st_size, "sha256": _sha256(path)}
                  for key, path in targets.items()},
        "io": io, "num_priors": job["num_priors"],
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.monotonic() - started, 1),
        **kept,
    }
    (out_dir / "build-info.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"[{name}] done in {info['seconds']} s: int8 {info['files']['int8']['bytes']} bytes, "
          f"fp32 {info['files']['fp32']['bytes']} bytes -> {out_dir}", flush=True)
    return info


def main(argv: list[str]) -> int:
    """Run the jobs of one job file; returns the exit status."""
    if len(argv) != 1:
        print("usage: python -m rpi_agent.models._build_worker JOB.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    try:
        calib_files = calibration.list_images(Path(spec["calib_dir"]))
        calib_hash = calibration.hash_images(calib_files)
        for job in spec["jobs"]:
            job["calib_dir"] = spec["calib_dir"]
            build_one(job, calib_files=calib_files, calib_hash=calib_hash, force=spec["force"],
                      command=spec["command"])
    except Exception as exc:
        print(f"build failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
