"""``faceagent eval widerface``: detector accuracy with the official WIDER FACE val protocol."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from rpi_agent.cli.detect import positive_int
from rpi_agent.errors import DatasetError
from rpi_agent.paths import shared_dir
from rpi_agent.preprocess import RESIZE_MODES

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  faceagent eval widerface                                   # RFB-320 INT8 on ../shared val_dev
  faceagent eval widerface --model slim-320:fp32 --resize stretch --plot pr.png
  faceagent eval widerface --images val/images --gt ground_truth --out preds/ --json
  faceagent eval widerface --model RFB-320 --size 640x480      # needs the RFB-320@640x480 build
  faceagent eval widerface --pred preds/ --gt ground_truth     # score an existing submission
"""


def _default(*parts: str) -> Path | None:
    root = shared_dir()
    return root.joinpath("data", "widerface", *parts) if root else None


def _size(text: str) -> tuple[int, int]:
    from rpi_agent.evaluation.runner import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: argparse._SubParsersAction) -> None:
    from rpi_agent.evaluation.runner import EVAL_RESIZE
    from rpi_agent.face_detector import DEFAULT_MODEL

    parser = sub.add_parser(
        "eval", help="measure accuracy on a benchmark data set",
        description="Measure detector accuracy. `widerface` runs the detector on WIDER FACE val images "
                    "(any subset, laid out <event>/<name>.jpg), writes the official submission files and "
                    "prints Easy/Medium/Hard AP computed with the official protocol.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True,
                                       parser_class=type(parser))
    wider = benchmarks.add_parser("widerface", help="WIDER FACE val AP (official protocol)",
                                  epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = wider.add_mutually_exclusive_group()
    source.add_argument("--images", type=Path, default=_default("val_dev", "images"), metavar="DIR",
                        help="val images as <event>/<name>.jpg (default: ../shared val_dev)")
    source.add_argument("--pred", type=Path, metavar="PRED_DIR",
                        help="evaluate existing submission files instead of running the detector")
    wider.add_argument("--gt", type=Path, default=_default("ground_truth"), metavar="DIR",
                       help="folder with wider_face_val.mat and wider_{easy,medium,hard}_val.mat")
    wider.add_argument("--model", default=DEFAULT_MODEL,
                       help=f"built variant NAME[:fp32] or a .tflite path (default {DEFAULT_MODEL}, INT8)")
    wider.add_argument("--size", type=_size, metavar="WxH",
                       help="input size; a variant name then means its build NAME@WxH")
    wider.add_argument("--resize", choices=RESIZE_MODES, default=EVAL_RESIZE,
                       help=f"fit images to the network (default {EVAL_RESIZE}, as the reference figures)")
    wider.add_argument("--out", type=Path, metavar="PRED_DIR", help="write submission files here")
    wider.add_argument("--plot", type=Path, metavar="PR.png", help="save the precision/recall curves")
    wider.add_argument("--threads", type=positive_int, default=1, help="interpreter threads (default 1)")
    wider.add_argument("--json", action="store_true", help="print the result as one JSON object")
    wider.set_defaults(func=run_widerface)


def _predictions(args: argparse.Namespace) -> tuple[dict, dict]:
    from rpi_agent.evaluation.runner import EVAL_OPTIONS, check_size, list_val_images, predict, resolve_sized_model
    from rpi_agent.face_detector import FaceDetector

    if args.pred is not None:
        from rpi_agent.evaluation.submission import read_predictions

        return read_predictions(args.pred), {"predictions": str(args.pred)}
    if args.images is None:
        raise DatasetError("no --images given and ../shared/data/widerface is not available")
    images = list_val_images(args.images)
    path = resolve_sized_model(args.model, args.size)
    detector = FaceDetector.from_model(path, num_threads=args.threads, resize=args.resize, options=EVAL_OPTIONS)
    check_size(detector, args.size)
    log.info("evaluating %s on %d image(s) from %s", path, len(images), args.images)
    preds = predict(detector, images, out_dir=args.out, progress=not args.json)
    width, height = detector.detector.input_size
    info = {"model": str(args.model), "path": str(path), "input": [width, height], "resize": args.resize}
    return preds, info


def run_widerface(args: argparse.Namespace) -> int:
    from rpi_agent.evaluation.widerface import SETTINGS, evaluate, load_ground_truth

    if args.gt is None:
        raise DatasetError("no --gt given and ../shared/data/widerface is not available")
    truth = load_ground_truth(args.gt)
    preds, info = _predictions(args)
    result = evaluate(preds, truth)
    record = {**info, "images": result.images, "faces": result.faces,
              "ap": {s: round(result.ap[s], 4) for s in SETTINGS}}
    if args.out is not None:
        record["out"] = str(args.out)
    if args.plot is not None:
        from rpi_agent.evaluation.plot import plot_pr

        record["plot"] = str(plot_pr(result, args.plot, title=Path(str(args.model)).name))
    if args.json:
        print(json.dumps(record))
        return 0
    what = info.get("path", info.get("predictions"))
    print(f"WIDER FACE val, {result.images} image(s): {what}"
          + (f" at {info['input'][0]}x{info['input'][1]}, {info['resize']}" if "input" in info else ""))
    for setting in SETTINGS:
        print(f"  {setting.capitalize():<7}AP {result.ap[setting]:.4f}  ({result.faces[setting]} faces)")
    for key in ("out", "plot"):
        if key in record:
            print(f"  {key}: {record[key]}")
    return 0
