"""Conversion steps: PyTorch -> ONNX -> TensorFlow SavedModel/FP32 TFLite -> full-integer TFLite.

Build-time only (torch, onnx2tf, tensorflow): runs inside the build venv.

onnx2tf turns the NCHW ONNX graph into an NHWC SavedModel and an FP32 TFLite; the INT8
model is then produced from that SavedModel by the TFLite converter directly, with one
calibration pass (onnx2tf's own ``-oiqt`` would calibrate four quantised flavours we don't use).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ONNX_OPSET = 13
INPUT_NAME = "input"
OUTPUT_NAMES = ("scores", "boxes")
LANDMARK_OUTPUT_NAMES = ("scores", "boxes", "landmarks")


def export_onnx(net: Any, target: Path, *, width: int, height: int,
                outputs: tuple[str, ...] = OUTPUT_NAMES, any_size: bool = False) -> None:
    """Export the network to ONNX with a static ``(1, 3, height, width)`` input.

    The TorchScript-based exporter is used (``dynamo=False``): the dynamo exporter needs
    onnxscript, which the pinned onnx version of onnx2tf does not match. ``any_size`` leaves
    the input's height and width (and so the prior count) free: ``width x height`` only traces.
    """
    import torch

    dummy = torch.zeros(1, 3, height, width, dtype=torch.float32)
    dynamic = None
    if any_size:
        dynamic = {INPUT_NAME: {2: "height", 3: "width"}, **{name: {1: "priors"} for name in outputs}}
    with torch.no_grad():
        torch.onnx.export(
            net, (dummy,), str(target), input_names=[INPUT_NAME], output_names=list(outputs),
            opset_version=ONNX_OPSET, dynamo=False, do_constant_folding=True, dynamic_axes=dynamic,
        )


@contextlib.contextmanager
def redirect_fds(log_path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (including C++ logs of TF) to a file."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log_path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def onnx_to_saved_model(onnx_path: Path, out_dir: Path) -> Path:
    """Run onnx2tf; returns the FP32 TFLite path (the SavedModel is ``out_dir`` itself).

    The current working directory must hold the onnx2tf sample array (see calibration.py),
    or onnx2tf tries to download it.
    """
    import onnx2tf
    import tf_keras

    # Keras numbers layers with process-wide counters that end up in the TFLite tensor names:
    # without a reset, a model's bytes would depend on how many were built before it.
    tf_keras.backend.clear_session()
    onnx2tf.convert(
        input_onnx_file_path=str(onnx_path), output_folder_path=str(out_dir),
        output_signaturedefs=True, non_verbose=True, verbosity="error",
    )
    fp32 = out_dir / f"{onnx_path.stem}_float32.tflite"
    if not fp32.is_file():
        raise RuntimeError(f"onnx2tf produced no {fp32.name}")
    return fp32


def quantize_full_int8(saved_model: Path, samples: list[np.ndarray], *, per_channel: bool = True) -> bytes:
    """Full-integer quantisation: int8 weights, activations, input and outputs.

    ``per_channel=False`` quantises each weight tensor with one scale: every channel of a
    per-channel tensor (and of its bias) costs 12 bytes of scale and zero point, about 100 KB in
    the landmark slim/RFB networks, which hold their accuracy without it (docs/accuracy.md).

    Calibration on the given samples (float NHWC, normalised) fixes the input range to the
    normalised pixel range, so the int8 input comes out with scale 1/128 and zero point -1 (for
    the landmark builds, which take raw pixels: scale 1 and zero point -128):
    an RGB byte ``v`` goes in as ``v ^ 0x80`` read as int8 (``v - 128``). A uint8 input would
    make the converter put a QUANTIZE (uint8 -> int8) in front of the first convolution, which
    XNNPACK runs as a full requantisation of the frame: 15 % of the whole network's time on
    x86 (see docs/performance.md), where the detector's XOR costs a twentieth of that.
    """
    import tensorflow as tf

    def representative() -> Iterator[list[np.ndarray]]:
        for sample in samples:
            yield [sample]

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = representative
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    if not per_channel:
        converter._experimental_disable_per_channel = True
    return bytes(converter.convert())


def describe_tflite(path: Path) -> dict[str, Any]:
    """Input/output tensors of a TFLite model: name, shape, dtype, quantisation."""
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_path=str(path))

    def entry(d: dict[str, Any]) -> dict[str, Any]:
        scale, zero = d["quantization"]
        return {"name": d["name"], "shape": [int(v) for v in d["shape"]], "dtype": np.dtype(d["dtype"]).name,
                "scale": float(scale), "zero_point": int(zero)}

    return {"inputs": [entry(d) for d in interp.get_input_details()],
            "outputs": [entry(d) for d in interp.get_output_details()]}


def check_int8_io(io: dict[str, Any], *, num_priors: int, width: int, height: int, mean: float = 127.0,
                  std: float = 128.0, landmarks: bool = False) -> list[str]:
    """Problems with an INT8 model's interface; empty when it is what the detector expects.

    The int8 input must decode as ``(byte - mean) / std`` for ``byte ^ 0x80`` read as int8
    (scale ``1/std``, zero point ``mean - 128``), so RGB bytes go in with one XOR.
    """
    problems = []
    (inp,) = io["inputs"]
    expected_zero = round(mean) - 128
    if inp["shape"] != [1, height, width, 3] or inp["dtype"] != "int8":
        problems.append(f"input is {inp['dtype']}{inp['shape']}, expected int8[1, {height}, {width}, 3]")
    elif abs(inp["scale"] - 1 / std) > 1e-6 or inp["zero_point"] != expected_zero:
        problems.append(f"input quantisation scale={inp['scale']} zero_point={inp['zero_point']}, "
                        f"expected {1 / std:g} and {expected_zero} (RGB bytes with the top bit flipped)")
    by_dim = {o["shape"][-1]: o for o in io["outputs"]}
    widths = (2, 4, 10) if landmarks else (2, 4)
    if len(io["outputs"]) != len(widths):
        problems.append(f"{len(io['outputs'])} outputs, expected {len(widths)}")
    for dim in widths:
        out = by_dim.get(dim)
        if out is None or out["shape"] != [1, num_priors, dim] or out["dtype"] not in ("int8", "uint8"):
            problems.append(f"no {out and out['dtype']} output [1, {num_priors}, {dim}]")
    scores = by_dim.get(2)
    if scores is not None:
        qmax = 127 if scores["dtype"] == "int8" else 255
        top = (qmax - scores["zero_point"]) * scores["scale"]
        if top < 0.99:
            problems.append(f"largest representable score is {top:.4f} (< 0.99)")
    return problems
