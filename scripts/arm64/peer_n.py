"""Run N inferences of one photo with upstream's runtimes (MNN, ncnn) and exit: insn_count.sh's peer workload.

The same scheme as ``infer_n.py``: everything but the loop (imports, model load, session set-up, one
warm-up inference, the input prepared from the photo) is the same for every N, so the count for N minus
the count for 0 is N inferences' worth. An inference is what ``scripts/bench_peers.py`` times: copying
the prepared float input into the runtime and running the network (MNN ``runSession``; ncnn a new
extractor and the ``scores`` and ``boxes`` extractions).

Usage (inside the arm64 root, normally through insn_count.sh --engine mnn|ncnn):
    python3 peer_n.py mnn MODEL.mnn IMAGE.jpg N
    python3 peer_n.py ncnn MODEL.param IMAGE.jpg N      # MODEL.bin beside it
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 320, 240


def prepared_input(image: str) -> np.ndarray:
    """The photo stretched to 320x240 as ``(rgb - 127) / 128``, ``(1, 3, H, W)`` float32, as upstream feeds it."""
    rgb = np.asarray(Image.open(image).convert("RGB").resize((WIDTH, HEIGHT), Image.BILINEAR))
    return ((rgb.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None].copy()


def mnn_infer(model: Path, data: np.ndarray) -> Callable[[], None]:
    import MNN

    interp = MNN.Interpreter(str(model))
    session = interp.createSession({"numThread": 1})
    source = interp.getSessionInput(session)
    tensor = MNN.Tensor((1, 3, HEIGHT, WIDTH), MNN.Halide_Type_Float, data, MNN.Tensor_DimensionType_Caffe)

    def infer() -> None:
        source.copyFrom(tensor)
        if interp.runSession(session) != 0:  # MNN prints why (e.g. an int8 op it has no kernel for)
            sys.exit(f"peer_n: MNN cannot run {model.name}")

    return infer


def ncnn_infer(param: Path, data: np.ndarray) -> Callable[[], None]:
    import ncnn

    net = ncnn.Net()
    net.opt.num_threads = 1
    net.opt.use_vulkan_compute = False
    if net.load_param(str(param)) or net.load_model(str(param.with_suffix(".bin"))):
        sys.exit(f"peer_n: ncnn cannot load {param}")
    # ncnn.Mat wraps the array without copying it: the closure keeps both alive.
    kept = (data[0], ncnn.Mat(data[0]))

    def infer() -> None:
        ex = net.create_extractor()  # a fresh one per inference, as bench_peers.py does
        ex.input("input", kept[1])
        ex.extract("scores")
        ex.extract("boxes")

    return infer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine", choices=("mnn", "ncnn"))
    parser.add_argument("model", type=Path)
    parser.add_argument("image")
    parser.add_argument("n", type=int)
    args = parser.parse_args(argv)
    data = prepared_input(args.image)
    infer = (mnn_infer if args.engine == "mnn" else ncnn_infer)(args.model, data)
    infer()  # warm-up: first-run allocations and kernel set-up land in the fixed part
    for _ in range(args.n):
        infer()
    print(f"n={args.n} engine={args.engine} model={args.model.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
