"""``faceagent eval widerface``: detector accuracy with the official WIDER FACE val protocol."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

from rpi_agent.cli.detect import model_arg, thread_count
from rpi_agent.detection.preprocess import RESIZE_MODES
from rpi_agent.errors import DatasetError, ModelError
from rpi_agent.paths import shared_dir

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  faceagent eval widerface                                   # RFB-320 INT8 on ../shared val_dev
  faceagent eval widerface --model slim-320:fp32 --resize stretch --plot pr.png
  faceagent eval widerface --images val/images --gt ground_truth --out preds/ --json
  faceagent eval widerface --model RFB-320 --size 640x480      # needs the RFB-320@640x480 build
  faceagent eval widerface --model retinaface-mnet-640         # AP, plus landmark error vs its FP32 build
  faceagent eval widerface --model retinaface-mnet-320@320x320:fp32 --resize native   # upstream's own protocol
  faceagent eval widerface --pred preds/ --gt ground_truth     # score an existing submission
  faceagent eval agreement --model slim-320                    # INT8 vs upstream FP32 on the photos
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


def _unit(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    from rpi_agent.detection.face_detector import DEFAULT_MODEL
    from rpi_agent.evaluation.runner import EVAL_RESIZE, LANDMARK_EVAL_RESIZE

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
    wider.add_argument("--model", type=model_arg, default=DEFAULT_MODEL,
                       help=f"built variant NAME[:fp32] or a .tflite path (default {DEFAULT_MODEL}, INT8)")
    wider.add_argument("--size", type=_size, metavar="WxH",
                       help="input size; a variant name then means its build NAME@WxH")
    wider.add_argument("--resize", choices=(*RESIZE_MODES, "native"),
                       help=f"fit images to the network (default {EVAL_RESIZE} for Ultra-Light models, "
                            f"{LANDMARK_EVAL_RESIZE} for landmark models: the more accurate of each); "
                            "native: a landmark NAME:fp32 run at each image's own size, long side the "
                            "build's, as upstream's figures were made (its any-size ONNX, onnxruntime)")
    wider.add_argument("--labels", type=Path, default=_default("retinaface_val_label.txt"), metavar="FILE",
                       help="landmark labels (RetinaFace layout) for the landmark error of landmark models "
                            "(default ../shared retinaface_val_label.txt)")
    wider.add_argument("--landmark-reference", metavar="NAME|PATH",
                       help="also give the landmark error against this model's confident faces "
                            "(default for a built INT8 variant NAME: NAME:fp32; 'none': skip)")
    wider.add_argument("--nms-iou", type=_unit, metavar="IOU",
                       help="NMS IoU threshold (default: the model family's protocol, 0.3 or 0.4)")
    wider.add_argument("--box-voting", type=_unit, metavar="IOU", default=0.0,
                       help="average each kept box with the candidates overlapping it by this IoU (default off)")
    wider.add_argument("--out", type=Path, metavar="PRED_DIR", help="write submission files here")
    wider.add_argument("--plot", type=Path, metavar="PR.png", help="save the precision/recall curves")
    wider.add_argument("--threads", type=thread_count, default=1, help="interpreter threads, 1 to 8 (default 1)")
    wider.add_argument("--json", action="store_true", help="print the result as one JSON object")
    wider.set_defaults(func=run_widerface)
    _register_agreement(benchmarks)


def _register_agreement(benchmarks: argparse._SubParsersAction) -> None:
    from rpi_agent.detection.face_detector import DEFAULT_MODEL, DEFAULT_RESIZE
    from rpi_agent.evaluation.agreement import AGREEMENT_IOU, AGREEMENT_SCORE

    agree = benchmarks.add_parser(
        "agreement", help="F1 of a model's faces against a reference model's (INT8 vs FP32)",
        description="Run two models on the same photos and match their faces greedily (IoU "
                    f"{AGREEMENT_IOU}, scores >= {AGREEMENT_SCORE}); print precision, recall and F1 of "
                    "--model against --reference.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root = shared_dir()
    agree.add_argument("--model", type=model_arg, default=DEFAULT_MODEL,
                       help=f"candidate model (default {DEFAULT_MODEL}, INT8)")
    agree.add_argument("--reference", type=model_arg, metavar="NAME|PATH",
                       help="reference model (default: upstream's FP32 .tflite of the same 320 network)")
    agree.add_argument("--images", type=Path, default=root / "data" / "faces" if root else None, metavar="DIR",
                       help="photos (default ../shared/data/faces)")
    agree.add_argument("--resize", choices=RESIZE_MODES, default=DEFAULT_RESIZE,
                       help=f"resize mode of both models (default {DEFAULT_RESIZE})")
    agree.add_argument("--json", action="store_true", help="print the result as one JSON object")
    agree.set_defaults(func=run_agreement)


def _predictions(args: argparse.Namespace) -> tuple[dict, dict]:
    from rpi_agent.detection.face_detector import FaceDetector
    from rpi_agent.detection.tflite import TFLiteDetector
    from rpi_agent.evaluation.runner import check_size, eval_settings, list_val_images, predict, resolve_sized_model

    if args.pred is not None:
        from rpi_agent.evaluation.submission import read_predictions

        return read_predictions(args.pred), {"predictions": str(args.pred)}
    if args.images is None:
        raise DatasetError("no --images given and ../shared/data/widerface is not available")
    images = list_val_images(args.images)
    if args.resize == "native":
        return _native_predictions(args, images)
    path = resolve_sized_model(args.model, args.size)
    tflite = TFLiteDetector(path, num_threads=args.threads)
    options, resize = eval_settings(tflite.has_landmarks)
    options = replace(options, box_voting=args.box_voting, iou_threshold=args.nms_iou or options.iou_threshold)
    args.resize = args.resize or resize
    detector = FaceDetector(tflite, resize=args.resize, options=options)
    check_size(detector, args.size)
    log.info("evaluating %s on %d image(s) from %s", path, len(images), args.images)
    faces: dict | None = {} if detector.landmarks else None
    preds = predict(detector, images, out_dir=args.out, progress=not args.json, landmarks=faces)
    width, height = detector.detector.input_size
    info = {"model": str(args.model), "path": str(path), "input": [width, height], "resize": args.resize,
            "nms_iou": options.iou_threshold, "box_voting": options.box_voting}
    if faces is not None:
        info["landmarks"] = _landmark_report(args, faces, images)
    return preds, info


def _native_predictions(args: argparse.Namespace, images: list) -> tuple[dict, dict]:
    """Upstream's protocol: the any-size FP32 ONNX on each image, long side the build's input side."""
    from rpi_agent.detection.face_detector import FaceDetector
    from rpi_agent.evaluation.native import NativeSizeDetector, any_size_onnx
    from rpi_agent.evaluation.runner import eval_settings, predict, resolve_sized_model

    path = resolve_sized_model(args.model, args.size)
    onnx = any_size_onnx(path)
    fixed = FaceDetector.from_model(path)
    options, _ = eval_settings(True)
    options = replace(options, box_voting=args.box_voting, iou_threshold=args.nms_iou or options.iou_threshold)
    long_side = max(fixed.detector.input_size)
    detector = NativeSizeDetector(onnx, fixed.layout, long_side, options)
    log.info("evaluating %s (long side %d) on %d image(s) from %s", onnx, long_side, len(images), args.images)
    preds = predict(detector, images, out_dir=args.out, progress=not args.json)
    return preds, {"model": str(args.model), "path": str(onnx), "long_side": long_side, "resize": "native",
                   "nms_iou": options.iou_threshold, "box_voting": options.box_voting}


def _landmark_report(args: argparse.Namespace, faces: dict, images: list) -> dict:
    """Landmark NME against the label file and against a reference model's faces."""
    from rpi_agent.detection.face_detector import FaceDetector
    from rpi_agent.evaluation.landmarks import as_labels, landmark_error, read_labels
    from rpi_agent.evaluation.runner import eval_settings, predict, resolve_sized_model

    report: dict = {}
    if args.labels is not None:
        report["labels"] = {"file": str(args.labels), **landmark_error(faces, read_labels(args.labels)).to_dict()}
    reference = args.landmark_reference
    if reference is None and ":" not in str(args.model) and not str(args.model).endswith(".tflite"):
        reference = f"{args.model}:fp32"
    if reference is not None and reference != "none":
        options, _ = eval_settings(True)
        ref_detector = FaceDetector.from_model(resolve_sized_model(reference, args.size), resize=args.resize,
                                               options=options, landmarks=True)
        ref_faces: dict = {}
        predict(ref_detector, images, progress=not args.json, landmarks=ref_faces)
        report["reference"] = {"model": reference, **landmark_error(faces, as_labels(ref_faces)).to_dict()}
    return report


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
          + (f" at {info['input'][0]}x{info['input'][1]}, {info['resize']}" if "input" in info else "")
          + (f", long side {info['long_side']}, native" if "long_side" in info else ""))
    for setting in SETTINGS:
        print(f"  {setting.capitalize():<7}AP {result.ap[setting]:.4f}  ({result.faces[setting]} faces)")
    for what, entry in info.get("landmarks", {}).items():
        nme = "n/a" if entry["nme"] is None else f"{entry['nme']:.4f}"
        print(f"  landmark NME vs {what} ({entry.get('file', entry.get('model'))}): {nme} over "
              f"{entry['matched']} matched of {entry['labelled']} labelled faces ({entry['normaliser']})")
    for key in ("out", "plot"):
        if key in record:
            print(f"  {key}: {record[key]}")
    return 0


def _default_reference(model: str) -> str:
    arch, _, size = model.partition(":")[0].partition("-")
    root = shared_dir()
    upstream = root / "models" / "upstream" / f"version-{arch}-320_without_postprocessing.tflite" if root else None
    if size != "320" or upstream is None or not upstream.is_file():
        raise ModelError(f"no upstream FP32 model for {model!r}: give --reference NAME|PATH")
    return str(upstream)


def run_agreement(args: argparse.Namespace) -> int:
    from rpi_agent.detection.face_detector import FaceDetector
    from rpi_agent.evaluation.agreement import agreement_options, compare_detectors
    from rpi_agent.imaging.listing import iter_image_paths

    if args.images is None:
        raise DatasetError("no --images given and ../shared/data/faces is not available")
    reference = args.reference or _default_reference(str(args.model))
    images = list(iter_image_paths([args.images]))
    reference_detector, candidate_detector = (
        FaceDetector.from_model(m, resize=args.resize, options=agreement_options()) for m in (reference, args.model)
    )
    result = compare_detectors(reference_detector, candidate_detector, images)
    record = {"model": str(args.model), "reference_model": reference, "images": len(images), "resize": args.resize,
              **result.to_dict()}
    if args.json:
        print(json.dumps(record))
    else:
        print(f"{args.model} vs {reference} on {len(images)} image(s), {args.resize}: F1 {result.f1:.4f} "
              f"(precision {result.precision:.4f}, recall {result.recall:.4f}, "
              f"{result.matched}/{result.reference} reference faces matched, {result.candidate} found)")
    return 0
