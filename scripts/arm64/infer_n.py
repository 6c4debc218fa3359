"""Run N detections of one photo and exit: the workload whose guest instructions insn_count.sh counts.

Everything but the loop (interpreter start, model load, XNNPACK weight packing, first-run warm-up, image
decode) runs the same way for every N, so the count for N minus the count for 0 is N loops' worth.

Usage (inside the arm64 root, normally through insn_count.sh):
    python3 infer_n.py MODEL.tflite IMAGE.jpg N [--stage invoke|run|detect|resize]

Stages: ``invoke`` is the bare ``Interpreter.invoke()`` on a preset input tensor (the network alone);
``run`` adds setting the quantised input and reading the outputs (``TFLiteDetector.run``); ``detect`` is the
whole ``FaceDetector.detect`` (resize, network, threshold, decode, NMS, landmarks if the model has them) on
the full-size photo, resized the model family's way (``corner`` for the landmark models); ``resize`` is
fitting the photo to the network's input alone (``fit_to_input``, the first step of ``detect``).

Prints one JSON object on stdout: what ran (input size, resize mode, landmarks, faces found in the warm-up).
"""

from __future__ import annotations

import argparse
import json
import sys

from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.detection.preprocess import fit_to_input
from rpi_agent.imaging.files import load_rgb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("image")
    parser.add_argument("n", type=int)
    parser.add_argument("--stage", choices=("invoke", "run", "detect", "resize"), default="invoke")
    args = parser.parse_args(argv)

    fd = FaceDetector.from_model(args.model, num_threads=1)
    rgb = load_rgb(args.image)
    size = (fd.detector.width, fd.detector.height)
    net_in, _ = fit_to_input(rgb, *size, fd.resize, fd.layout.pad_value)
    # One untimed pass so lazy allocations and kernel setup land in the fixed part, not in the loop.
    faces = fd.detect(rgb).faces
    # The bare network: the detector keeps its interpreter private and exposes no invoke of its own.
    interpreter = fd.detector._interp
    for _ in range(args.n):
        if args.stage == "invoke":
            interpreter.invoke()
        elif args.stage == "run":
            fd.detector.run(net_in)
        elif args.stage == "resize":
            fit_to_input(rgb, *size, fd.resize, fd.layout.pad_value)
        else:
            fd.detect(rgb)
    facts = {"input": f"{fd.detector.width}x{fd.detector.height}", "resize": fd.resize,
             "landmarks": fd.landmarks, "faces": len(faces)}
    print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
