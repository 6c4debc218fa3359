#!/usr/bin/env python3
"""Time the board's decoder (k210/facedet.py) under MicroPython (WebAssembly, node) vs the NumPy decoder.

Both decode the same nncase-simulated KPU outputs of the shared photos (threshold, decode,
hard NMS). MicroPython reads the outputs as tuples of floats in chunks, as `fmap[a:b]` gives
them on a board. Prints one JSON object: per model, milliseconds per frame of each (NumPy: median
of the repeats; MicroPython: mean of the repeats, as its clock has 1 ms steps), medians over the
frames, their ratio, and the MicroPython heap allocated while decoding one frame with the GC off.
That is the garbage a frame makes (each float is a heap object), i.e. roughly how often the GC
must run on a board; the live heap at any moment is far smaller (one chunk of scores plus the
candidates). This WebAssembly port grows its heap on demand, so it cannot show the peak itself.

Usage: .venv/bin/python scripts/bench_k210_decoder.py [--repeat N] [--threshold T]
Needs scripts/k210_ci.sh (nncase venv, MicroPython for node, the kmodels).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rpi_agent.detection.decoder import DecodeOptions, postprocess
from rpi_agent.detection.preprocess import fit_to_input
from rpi_agent.detection.priors import PriorSpec, generate_priors
from rpi_agent.errors import FaceAgentError
from rpi_agent.imaging.files import load_rgb
from rpi_agent.imaging.listing import iter_image_paths
from rpi_agent.k210.micropython import run_micropython
from rpi_agent.k210.simulator import simulate
from rpi_agent.paths import models_dir, shared_dir

REPO = Path(__file__).resolve().parent.parent
SPEC = PriorSpec(320, 240)
MP_BENCH = """
import array, gc, json, time, facedet
cfg = json.loads(open("/data/cfg.json").read())
pri = facedet.Priors(320, 240)
def load(path):
    with open(path, "rb") as f:
        return array.array("f", f.read())
times, allocs, faces = [], [], []
for i in range(cfg["frames"]):
    s = load("/data/%d.scores" % i)
    b = load("/data/%d.loc" % i)
    rs = lambda a, z: tuple(s[a:z])
    rb = lambda a, z: tuple(b[a:z])
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    found = facedet.detect(rs, rb, pri, cfg["threshold"], 0.3, cfg["top_k"], 200, cfg["chunk"])
    allocs.append(gc.mem_alloc() - before)
    gc.enable()
    # This port's clock ticks in whole milliseconds: time the repeats together, not one by one.
    gc.collect()
    t0 = time.ticks_us()
    for _ in range(cfg["repeat"]):
        facedet.detect(rs, rb, pri, cfg["threshold"], 0.3, cfg["top_k"], 200, cfg["chunk"])
    times.append(time.ticks_diff(time.ticks_us(), t0) / cfg["repeat"])
    faces.append(len(found))
print(json.dumps({"us": times, "alloc": allocs, "faces": faces}))
"""


def camera_frames() -> np.ndarray:
    shared = shared_dir()
    if shared is None:
        raise FaceAgentError("../shared is missing")
    paths = iter_image_paths([shared / "data" / "faces"])
    return np.stack([fit_to_input(load_rgb(p), 320, 240, "stretch")[0] for p in paths])


def numpy_ms(scores: np.ndarray, loc: np.ndarray, *, threshold: float, top_k: int, repeat: int) -> list[float]:
    priors = generate_priors(SPEC)
    options = DecodeOptions(score_threshold=threshold, top_k=top_k)
    per_frame = []
    for s, lo in zip(scores, loc, strict=True):
        face = np.ascontiguousarray(s[:, 1])
        runs = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            postprocess(face, lo, priors, SPEC, options=options)
            runs.append((time.perf_counter() - t0) * 1e3)
        per_frame.append(statistics.median(runs))
    return per_frame


def micropython_run(scores: np.ndarray, loc: np.ndarray, *, threshold: float, top_k: int, repeat: int,
                    chunk: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="faceagent-bench-") as tmp:
        files = {"/lib/facedet.py": REPO / "k210" / "facedet.py"}
        for i in range(scores.shape[0]):
            for kind, arr in (("scores", scores[i]), ("loc", loc[i])):
                path = Path(tmp) / f"{i}.{kind}"
                path.write_bytes(np.ascontiguousarray(arr, dtype="<f4").tobytes())
                files[f"/data/{i}.{kind}"] = path
        cfg = {"frames": int(scores.shape[0]), "threshold": threshold, "top_k": top_k, "repeat": repeat,
               "chunk": chunk}
        (Path(tmp) / "cfg.json").write_text(json.dumps(cfg))
        files["/data/cfg.json"] = Path(tmp) / "cfg.json"
        out = run_micropython(MP_BENCH, files=files, sys_path=["/lib"], timeout=1800)
    return dict(json.loads(out.strip().splitlines()[-1]))


def bench_model(name: str, frames: np.ndarray, args: argparse.Namespace) -> dict[str, object]:
    kmodel = models_dir() / name / f"{name}-k210-v5.kmodel"
    out = simulate(kmodel, frames)
    np_ms = numpy_ms(out.scores, out.loc, threshold=args.threshold, top_k=args.top_k, repeat=args.repeat)
    mp = micropython_run(out.scores, out.loc, threshold=args.threshold, top_k=args.top_k,
                         repeat=args.repeat, chunk=args.chunk)
    mp_ms = [us / 1e3 for us in mp["us"]]
    return {
        "kmodel_bytes": kmodel.stat().st_size,
        "numpy_ms_median": round(statistics.median(np_ms), 4),
        "micropython_wasm_ms_median": round(statistics.median(mp_ms), 3),
        "ratio_median_of_frames": round(statistics.median(m / n for m, n in zip(mp_ms, np_ms, strict=True)), 1),
        "ratio_of_totals": round(sum(mp_ms) / sum(np_ms), 1),
        "micropython_wasm_ms_max": round(max(mp_ms), 3),
        "faces_per_frame_mean": round(statistics.mean(mp["faces"]), 2),
        "micropython_garbage_kb_per_frame_max": round(max(mp["alloc"]) / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["slim-320", "RFB-320"])
    parser.add_argument("--threshold", type=float, default=0.6)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)
    try:
        frames = camera_frames()
        results = {name: bench_model(name, frames, args) for name in args.models}
    except FaceAgentError as exc:
        print(f"bench_k210_decoder: {exc}", file=sys.stderr)
        return 1
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    print(json.dumps({"frames": int(frames.shape[0]), "threshold": args.threshold, "top_k": args.top_k,
                      "chunk": args.chunk, "repeat": args.repeat, "node": node,
                      "python": platform.python_version(), "models": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
