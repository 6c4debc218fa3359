#!/usr/bin/env python3
"""Our INT8 TFLite beside other runtimes of the same networks, in one process; prints JSON.

Engines (those whose package or file is missing are reported as such, not run):

- ``litert_int8``: our full-integer build under LiteRT + XNNPACK (the daemon's runtime);
- ``ort_fp32``: onnxruntime FP32 on the variant's own ONNX export (the baseline of ``faceagent bench``);
- ``ort_int8_qdq``: onnxruntime on its own static INT8 of that ONNX (QDQ, per-channel int8 weights,
  uint8 activations: onnxruntime's default and its fast x86 path, where int8 activations measured
  1.7x slower; MinMax calibration on ../shared/data/faces), made once into the cache;
- ``mnn_fp32``, ``mnn_int8``: upstream's own deployment, PyPI ``MNN`` with upstream's ``.mnn`` files
  (``../shared/models/upstream-runtimes/mnn``);
- ``ncnn_fp32``: PyPI ``ncnn`` with upstream's param/bin;
- ``yunet``: libfacedetection's YuNet (PyPI ``yuface``, weights compiled in), on the same 320x240 frame.
  Its call includes its own decode and NMS, so its time is an upper bound of its inference.

Timing: the photos stretched to the network input, each engine's input prepared beforehand (pixel
conversion is not timed), then one thread each, engines taking turns frame by frame, one warm-up pass;
medians. ``--ap`` also runs every engine (with our decoder and the evaluation settings for the
networks that output raw scores and offsets) on WIDER FACE val_dev and scores it with the official
protocol. Install the peers with ``pip install -e '.[peers]'``; they are never daemon dependencies.

Usage:
    .venv/bin/python scripts/bench_peers.py [--model RFB-320 slim-320] [--rounds 10] [--ap] [--plot P.png]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# One thread everywhere, before any runtime is imported (libfacedetection uses OpenMP).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from rpi_agent.detection.decoder import FLOAT
from rpi_agent.detection.preprocess import fit_to_input
from rpi_agent.detection.tflite import RawOutput, TFLiteDetector
from rpi_agent.evaluation.machine import cpu_info
from rpi_agent.paths import model_file, models_dir, shared_dir

WIDTH, HEIGHT = 320, 240
_UPSTREAM_MNN = {"RFB-320": ("RFB-320.mnn", "RFB-320-quant-ADMM-32.mnn"),
                 "slim-320": ("slim-320.mnn", "slim-320-quant-ADMM-50.mnn")}
_UPSTREAM_NCNN = {"RFB-320": "RFB-320", "slim-320": "slim_320"}


def normalised_nchw(rgb: np.ndarray) -> np.ndarray:
    """``(rgb - 127) / 128`` as ``(1, 3, H, W)`` float32, how every upstream runtime is fed."""
    return ((rgb.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None].copy()


class Engine:
    """A runtime of one network: ``prepare`` an input-size RGB frame (untimed), ``infer`` it (timed)."""

    name = ""
    path: Path
    width, height = WIDTH, HEIGHT

    def prepare(self, rgb: np.ndarray) -> Any:
        return normalised_nchw(rgb)

    def infer(self, prepared: Any) -> None:
        raise NotImplementedError

    def outputs(self) -> tuple[np.ndarray, np.ndarray]:
        """``(scores (N, 2), loc (N, 4))`` float32 of the last ``infer``."""
        raise NotImplementedError

    def run(self, rgb: np.ndarray) -> RawOutput:
        """What :class:`rpi_agent.face_detector.FaceDetector` calls: the raw float outputs."""
        self.infer(self.prepare(rgb))
        scores, loc = self.outputs()
        return RawOutput(scores[:, 1].astype(np.float32), loc.astype(np.float32), FLOAT, FLOAT)


class LiteRT(Engine):
    def __init__(self, path: Path) -> None:
        self.path, self.det = path, TFLiteDetector(path, num_threads=1)
        self.interp = self.det._interp
        self.index = self.interp.get_input_details()[0]["index"]

    def prepare(self, rgb: np.ndarray) -> Any:
        self.det.run(rgb)  # leaves the converted input in the interpreter; re-set below
        return self.interp.get_tensor(self.index).copy()

    def infer(self, prepared: Any) -> None:
        self.interp.set_tensor(self.index, prepared)
        self.interp.invoke()

    def run(self, rgb: np.ndarray) -> RawOutput:
        return self.det.run(rgb)


class Ort(Engine):
    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        options.log_severity_level = 3
        self.path, self.session = path, ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.names = [o.name for o in self.session.get_outputs()]
        self.last: list[np.ndarray] = []

    def infer(self, prepared: Any) -> None:
        self.last = self.session.run(None, {self.input: prepared})

    def outputs(self) -> tuple[np.ndarray, np.ndarray]:
        by_width = {a.shape[-1]: a.reshape(-1, a.shape[-1]) for a in self.last}
        return by_width[2], by_width[4]


class Mnn(Engine):
    def __init__(self, path: Path) -> None:
        import MNN

        self.mnn, self.path = MNN, path
        self.interp = MNN.Interpreter(str(path))
        self.session = self.interp.createSession({"numThread": 1})
        self.input = self.interp.getSessionInput(self.session)
        self.infer(self.prepare(np.full((HEIGHT, WIDTH, 3), 127, np.uint8)))
        if self.status != 0:  # MNN prints why (e.g. "Don't support type [EltwiseInt8]") and returns a code
            raise RuntimeError(f"MNN cannot run {path.name} (runSession returned {self.status})")

    def prepare(self, rgb: np.ndarray) -> Any:
        return self.mnn.Tensor((1, 3, HEIGHT, WIDTH), self.mnn.Halide_Type_Float, normalised_nchw(rgb),
                               self.mnn.Tensor_DimensionType_Caffe)

    def infer(self, prepared: Any) -> None:
        self.input.copyFrom(prepared)
        self.status = self.interp.runSession(self.session)

    def outputs(self) -> tuple[np.ndarray, np.ndarray]:
        arrays = {}
        for key, tensor in self.interp.getSessionOutputAll(self.session).items():
            shape = tensor.getShape()
            host = self.mnn.Tensor(shape, self.mnn.Halide_Type_Float, np.zeros(shape, np.float32),
                                   tensor.getDimensionType())
            tensor.copyToHostTensor(host)
            arrays[key] = np.array(host.getData(), np.float32).reshape(-1, shape[-1])
        return arrays["scores"], arrays["boxes"]


class Ncnn(Engine):
    def __init__(self, param: Path) -> None:
        import ncnn

        self.ncnn, self.path = ncnn, param
        self.net = ncnn.Net()
        self.net.opt.num_threads = 1
        self.net.opt.use_vulkan_compute = False
        if self.net.load_param(str(param)) or self.net.load_model(str(param.with_suffix(".bin"))):
            raise RuntimeError(f"ncnn cannot load {param}")
        self.last: tuple[np.ndarray, np.ndarray] | None = None

    def prepare(self, rgb: np.ndarray) -> Any:
        # ncnn.Mat wraps the array without copying it: keep the array alive beside it.
        array = normalised_nchw(rgb)[0]
        return array, self.ncnn.Mat(array)

    def infer(self, prepared: Any) -> None:
        self.ex = self.net.create_extractor()  # the output Mats live in the extractor's memory
        self.ex.input("input", prepared[1])
        _, scores = self.ex.extract("scores")
        _, boxes = self.ex.extract("boxes")
        self.last = scores, boxes

    def outputs(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.last is not None
        return np.array(self.last[0]).reshape(-1, 2), np.array(self.last[1]).reshape(-1, 4)


class YuNet(Engine):
    """libfacedetection: detection on the frame as given, its own decode and NMS included."""

    def __init__(self) -> None:
        import yuface

        self.detect = yuface.c_detect  # all faces libfacedetection keeps (its own 0.3 floor and NMS)
        self.path = Path(yuface.__file__).parent
        self.faces = np.zeros((0, 5), np.float32)

    def prepare(self, rgb: np.ndarray) -> Any:
        return np.ascontiguousarray(rgb[:, :, ::-1])

    def infer(self, prepared: Any) -> None:
        found = np.asarray(self.detect(prepared), np.float32).reshape(-1, 16)  # score, x, y, w, h, landmarks
        self.faces = np.hstack([found[:, 1:5], found[:, :1] / 100.0])

    def xywh(self, rgb: np.ndarray) -> np.ndarray:
        """``(P, 5)`` x, y, w, h, score in the pixels of ``rgb``."""
        self.infer(self.prepare(rgb))
        return self.faces[np.argsort(-self.faces[:, 4], kind="stable")]


class _Calibration:
    """onnxruntime's calibration reader over the face photos."""

    def __init__(self, frames: list[np.ndarray], name: str) -> None:
        self.batches = iter([{name: normalised_nchw(f)} for f in frames])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def ort_qdq_int8(onnx: Path, frames: list[np.ndarray]) -> Path:
    """onnxruntime's static QDQ INT8 of ``onnx`` (U8S8, per-channel weights), made once beside it."""
    target = onnx.with_name(f"{onnx.stem}-ort-qdq-u8s8.onnx")
    if target.is_file():
        return target
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    name = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    partial = target.with_suffix(".partial.onnx")
    quantize_static(str(onnx), str(partial), _Calibration(frames, name), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    partial.replace(target)
    return target


def engines_for(name: str, frames: list[np.ndarray]) -> tuple[dict[str, Engine], dict[str, str]]:
    """Every engine of variant ``name`` that loads here, and why the others did not."""
    shared = shared_dir()
    runtimes = shared / "models" / "upstream-runtimes" if shared else None
    onnx = models_dir() / name / f"{name}.onnx"
    makers: dict[str, Callable[[], Engine]] = {
        "litert_int8": lambda: LiteRT(model_file(name, "int8")),
        "ort_fp32": lambda: Ort(onnx),
        "ort_int8_qdq": lambda: Ort(ort_qdq_int8(onnx, frames)),
    }
    if runtimes is not None and name in _UPSTREAM_MNN:
        fp32, int8 = _UPSTREAM_MNN[name]
        makers["mnn_fp32"] = lambda: Mnn(runtimes / "mnn" / fp32)
        makers["mnn_int8"] = lambda: Mnn(runtimes / "mnn" / int8)
        makers["ncnn_fp32"] = lambda: Ncnn(runtimes / "ncnn" / f"{_UPSTREAM_NCNN[name]}.param")
    engines, refused = {}, {}
    for key, make in makers.items():
        try:
            engines[key] = make()
        except ImportError as exc:
            refused[key] = f"not installed ({exc.name}): pip install -e '.[peers]'"
        except (RuntimeError, OSError, ValueError) as exc:
            refused[key] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return engines, refused


def time_engines(engines: dict[str, Engine], frames: list[np.ndarray], rounds: int) -> dict[str, float]:
    """Median inference ms per engine; engines take turns frame by frame; the first pass warms up."""
    prepared = {key: [e.prepare(f) for f in frames] for key, e in engines.items()}
    samples: dict[str, list[float]] = {key: [] for key in engines}
    for round_index in range(rounds + 1):
        for i in range(len(frames)):
            for key, engine in engines.items():
                t0 = time.perf_counter()
                engine.infer(prepared[key][i])
                elapsed = (time.perf_counter() - t0) * 1e3
                if round_index:
                    samples[key].append(elapsed)
    return {key: round(statistics.median(v), 4) for key, v in samples.items()}


def widerface_ap(engine: Engine, images: list[tuple[str, str, Path]], truth: Any) -> dict[str, float]:
    """Easy / Medium / Hard val AP of one engine, stretched to its input like our models."""
    from rpi_agent.detection.face_detector import FaceDetector
    from rpi_agent.evaluation.runner import EVAL_OPTIONS, predict
    from rpi_agent.evaluation.widerface import evaluate
    from rpi_agent.imaging.files import load_rgb

    if isinstance(engine, YuNet):
        preds = {}
        for event, name, path in images:
            rgb = load_rgb(path)
            net_in, _ = fit_to_input(rgb, WIDTH, HEIGHT, "stretch")
            rows = engine.xywh(net_in)
            rows[:, :4] *= np.array([rgb.shape[1] / WIDTH, rgb.shape[0] / HEIGHT] * 2, np.float32)
            preds[(event, name)] = rows
    else:
        fd = FaceDetector(engine, resize="stretch", options=EVAL_OPTIONS)  # type: ignore[arg-type]
        preds = predict(fd, images, progress=False)
    return {k: round(v, 4) for k, v in evaluate(preds, truth).ap.items()}


def load_frames(folder: Path) -> list[np.ndarray]:
    from rpi_agent.imaging.files import load_rgb

    photos = sorted(folder.glob("*.jpg"))
    if not photos:
        raise SystemExit(f"bench_peers: no .jpg photos in {folder}")
    return [fit_to_input(load_rgb(p), WIDTH, HEIGHT, "stretch")[0] for p in photos]


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for package in ("ai-edge-litert", "onnxruntime", "MNN", "ncnn", "yuface", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def plot(result: dict[str, Any], path: Path) -> None:
    """WIDER val_dev AP (Medium and Hard) against ms per frame, one pair of points per engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharex=True)
    rows = [(k, r) for k, r in result["engines"].items() if r.get("ap") and k not in result.get("extra", [])]
    for ax, setting in zip(axes, ("medium", "hard"), strict=True):
        for n, (key, row) in enumerate(rows):
            ours = "litert" in key
            ax.scatter(row["ms"], row["ap"][setting], marker="*" if ours else "o", s=160 if ours else 60,
                       color="tab:red" if ours else f"C{n % 10}", zorder=3)
            ax.annotate(key, (row["ms"], row["ap"][setting]), textcoords="offset points", fontsize=7,
                        xytext=(6, 6 - 12 * (n % 3)))
        ax.set_xscale("log")
        ax.set_xlabel("inference ms per 320x240 frame, 1 thread (median, log scale)")
        ax.set_ylabel(f"WIDER FACE val_dev AP ({setting})")
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"Same networks, other runtimes, one process: {result['cpu']['model']} "
                 f"({result['cpu']['machine']}); star: our INT8 (LiteRT + XNNPACK)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["RFB-320", "slim-320"], choices=sorted(_UPSTREAM_MNN),
                        help="networks (default both 320 variants)")
    parser.add_argument("--rounds", type=int, default=10, help="timed passes over the photos (default 10)")
    parser.add_argument("--images", type=Path, help="photos to time on (default ../shared/data/faces)")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME/LABEL=PATH",
                        help="another TFLite file timed beside NAME's engines, e.g. an older build")
    parser.add_argument("--ap", action="store_true", help="also WIDER FACE val_dev AP of every engine (minutes)")
    parser.add_argument("--plot", type=Path, help="PNG of AP against ms (needs --ap)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.plot and not args.ap:
        parser.error("--plot needs --ap")
    return args


def collect(args: argparse.Namespace, frames: list[np.ndarray]) -> tuple[dict[str, Engine], dict[str, str]]:
    engines: dict[str, Engine] = {}
    refused: dict[str, str] = {}
    for name in args.model:
        found, why = engines_for(name, frames)
        engines.update({f"{name}/{k}": e for k, e in found.items()})
        refused.update({f"{name}/{k}": v for k, v in why.items()})
    for extra in args.extra:
        label, _, path = extra.partition("=")
        if "/" not in label or not Path(path).is_file():
            raise SystemExit(f"bench_peers: --extra {extra!r}: expected NAME/LABEL=PATH of an existing file")
        engines[label] = LiteRT(Path(path))
    try:
        engines["yunet"] = YuNet()
    except ImportError:
        refused["yunet"] = "not installed (yuface): pip install -e '.[peers]'"
    return engines, refused


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # MNN writes its messages to the C stdout: keep stdout for the JSON, send fd 1 to stderr.
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    shared = shared_dir()
    folder = args.images or (shared / "data" / "faces" if shared else None)
    if folder is None or not folder.is_dir():
        raise SystemExit("bench_peers: no --images given and ../shared/data/faces is not available")
    frames = load_frames(folder)
    engines, refused = collect(args, frames)
    ms = time_engines(engines, frames, args.rounds)
    rows: dict[str, dict[str, Any]] = {}
    for key, value in ms.items():
        ours = ms.get(f"{key.split('/')[0]}/litert_int8", ms.get(f"{args.model[0]}/litert_int8"))
        rows[key] = {"ms": value, "vs_our_int8": round(value / ours, 3) if ours else None,
                     "file": str(engines[key].path)}
    if args.ap and shared is not None:
        from rpi_agent.evaluation.runner import list_val_images
        from rpi_agent.evaluation.widerface import load_ground_truth

        wider = shared / "data" / "widerface"
        images, truth = list_val_images(wider / "val_dev" / "images"), load_ground_truth(wider / "ground_truth")
        for key, engine in engines.items():
            rows[key]["ap"] = widerface_ap(engine, images, truth)
    result = {"cpu": cpu_info(), "python": platform.python_version(), "packages": versions(), "threads": 1,
              "input": f"{WIDTH}x{HEIGHT} stretch", "frames": len(frames), "rounds": args.rounds,
              "engines": rows, "refused": refused, "extra": [e.partition("=")[0] for e in args.extra]}
    if args.plot:
        plot(result, args.plot)
    json.dump(result, out, indent=1)
    out.write("\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
