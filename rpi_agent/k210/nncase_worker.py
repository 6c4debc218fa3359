"""Compile and simulate K210 kmodels (V5) with nncase 1.9; runs inside the nncase virtualenv.

This file is executed by the nncase venv's own Python 3.10 (``python nncase_worker.py CMD ...``),
never imported by faceagent, so it depends on nothing but that venv (nncase, onnx, onnxsim,
onnxruntime, numpy). It prints one JSON object on stdout; errors go to stderr with exit 1.

Commands:
    compile ONNX KMODEL CALIB_NPY --dump DIR [--mean M --std S]   (CALIB_NPY: (N, 3, H, W) uint8 RGB)
    simulate KMODEL INPUT_NPY OUTPUT_NPZ       (INPUT_NPY: (N, H, W, 3) uint8 RGB)
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxsim import simplify

# onnxruntime must be imported before nncase: the other order segfaults in nncase 1.9.
# (onnxsim has already imported it above; the explicit import keeps the rule visible.)
importlib.import_module("onnxruntime")
nncase = importlib.import_module("nncase")

# Ultra-Light's normalisation, (RGB - 127) / 128; the landmark networks take raw pixels (mean 0,
# std 1) because their BGR mean is already a subtraction inside the graph.
MEAN = 127.0
STD = 128.0
OUTPUT_DIMS = ([2, 4], [2, 4, 10])  # scores, boxes (, landmarks: five points)


def _ordered_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """Put the outputs in (scores, boxes, landmarks) order, told apart by their last dimension (2, 4, 10)."""
    def last_dim(out: onnx.ValueInfoProto) -> int:
        return out.type.tensor_type.shape.dim[-1].dim_value

    outs = list(model.graph.output)
    dims = sorted(last_dim(o) for o in outs)
    if dims not in OUTPUT_DIMS:
        raise SystemExit(f"expected outputs scores ...x2, boxes ...x4 (and landmarks ...x10), got last dims {dims}")
    outs.sort(key=last_dim)
    del model.graph.output[:]
    model.graph.output.extend(outs)
    return model


def _input_hw(model: onnx.ModelProto) -> tuple[int, int]:
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] != 3:
        raise SystemExit(f"expected an NCHW RGB input, got shape {dims}")
    return dims[2], dims[3]


def _options(height: int, width: int, dump: Path, mean: float, std: float) -> Any:
    opts = nncase.CompileOptions()
    opts.target = "k210"
    opts.preprocess = True
    opts.input_type = "uint8"
    opts.input_layout = "NCHW"
    opts.output_layout = "NCHW"
    opts.input_shape = [1, 3, height, width]
    opts.input_range = [0, 255]
    opts.mean = [mean, mean, mean]
    opts.std = [std, std, std]
    opts.quant_type = "uint8"
    opts.w_quant_type = "uint8"
    # MSE-chosen weight ranges: on the shared photos F1 vs the INT8 TFLite goes from 0.952 to
    # 0.969 (slim-320) and 0.970 to 0.986 (RFB-320) compared with plain min/max.
    opts.use_mse_quant_w = True
    opts.dump_ir = True
    opts.dump_asm = True
    opts.dump_dir = str(dump)
    return opts


def op_split(dump: Path) -> dict[str, dict[str, int]]:
    """Count runtime ops per target from nncase's dump: KPU modules vs the CPU (stackvm) module."""
    split: dict[str, Counter[str]] = {"kpu": Counter(), "cpu": Counter()}
    for ops_file in sorted(dump.glob("*/*/runtime_ops.txt")):
        target = "kpu" if ops_file.parent.parent.name == "k210" else "cpu"
        for line in ops_file.read_text().splitlines():
            if line.startswith("["):
                split[target][line[1 : line.index("]")]] += 1
    return {k: dict(sorted(v.items())) for k, v in split.items()}


def memory_usage(dump: Path) -> dict[str, int]:
    """Bytes per memory pool of the compiled model (``input``, ``output``, ``data``, ``MODEL``, ``TOTAL``)."""
    usage: dict[str, int] = {}
    info = dump / "kmodel_info.txt"
    for line in info.read_text().splitlines() if info.is_file() else []:
        name, _, rest = line.partition(":")
        if rest.strip().endswith("B)") and "(" in rest:
            usage[name.strip().lower()] = int(rest[rest.rindex("(") + 1 : -len(" B)")].strip())
    return usage


def cmd_compile(args: argparse.Namespace) -> dict[str, object]:
    model, ok = simplify(onnx.load(args.onnx))
    if not ok:
        raise SystemExit("onnxsim could not validate the simplified model")
    model = _ordered_outputs(model)
    height, width = _input_hw(model)
    calib = np.load(args.calib)
    if calib.dtype != np.uint8 or calib.shape[1:] != (3, height, width):
        # float samples are accepted silently by nncase and give a garbage quantisation
        raise SystemExit(f"calibration must be uint8 (N, 3, {height}, {width}), got {calib.dtype} {calib.shape}")
    dump = Path(args.dump)
    compiler = nncase.Compiler(_options(height, width, dump, args.mean, args.std))
    compiler.import_onnx(model.SerializeToString(), nncase.ImportOptions())
    ptq = nncase.PTQTensorOptions()
    ptq.samples_count = int(calib.shape[0])
    ptq.set_tensor_data(np.ascontiguousarray(calib).tobytes())
    compiler.use_ptq(ptq)
    compiler.compile()
    kmodel = compiler.gencode_tobytes()
    Path(args.kmodel).write_bytes(kmodel)
    return {"kmodel": args.kmodel, "bytes": len(kmodel), "input": [width, height],
            "calibration_samples": int(calib.shape[0]), "ops": op_split(dump),
            "memory_bytes": memory_usage(dump), "mean": args.mean, "std": args.std,
            "outputs": [o.name for o in model.graph.output]}


def cmd_simulate(args: argparse.Namespace) -> dict[str, object]:
    frames = np.load(args.frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise SystemExit(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
    sim = nncase.Simulator()
    sim.load_model(Path(args.kmodel).read_bytes())
    outs: list[list[np.ndarray]] = [[] for _ in range(sim.outputs_size)]
    for frame in frames:
        chw = np.ascontiguousarray(frame.transpose(2, 0, 1)[None])
        sim.set_input_tensor(0, nncase.RuntimeTensor.from_numpy(chw))
        sim.run()
        for i in range(sim.outputs_size):
            outs[i].append(sim.get_output_tensor(i).to_numpy()[0].copy())
    arrays = {f"out{i}": np.stack(o) for i, o in enumerate(outs)}
    np.savez(args.out, **arrays)  # type: ignore[arg-type]
    return {"frames": int(frames.shape[0]), "outputs": {k: list(v.shape) for k, v in arrays.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nncase_worker")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("compile")
    p.add_argument("onnx")
    p.add_argument("kmodel")
    p.add_argument("calib")
    p.add_argument("--dump", required=True)
    p.add_argument("--mean", type=float, default=MEAN, help="input (pixel - mean) / std, as the network was trained")
    p.add_argument("--std", type=float, default=STD)
    p.set_defaults(func=cmd_compile)
    p = sub.add_parser("simulate")
    p.add_argument("kmodel")
    p.add_argument("frames")
    p.add_argument("out")
    p.set_defaults(func=cmd_simulate)
    args = parser.parse_args(argv)
    result = args.func(args)
    result["nncase"] = metadata.version("nncase")
    sys.stdout.flush()
    print("FACEAGENT-RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
