"""``faceagent bench``: per-stage speed of the built models against onnxruntime FP32."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from rpi_agent.cli.detect import positive_int, unit_float, variant_arg
from rpi_agent.detection.preprocess import RESIZE_MODES
from rpi_agent.errors import FaceAgentError, ImageError, ModelError
from rpi_agent.paths import shared_dir

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  faceagent bench --json                       # every built variant on ../shared/data/faces
  faceagent bench --model RFB-320 slim-320 --rounds 10
  faceagent bench --images my_photos/ --resize stretch
  faceagent bench --model RFB-320 --threshold 0.3      # the crowd photos at 0.3: decode + NMS of 250 faces
  faceagent bench --images my_photos/ --crowds party.jpg
"""


def register(sub: argparse._SubParsersAction) -> None:
    from rpi_agent.detection.face_detector import DEFAULT_RESIZE
    from rpi_agent.evaluation.bench import CROWD_PHOTOS

    parser = sub.add_parser(
        "bench", help="time preprocess / inference / decode of the built models",
        description="Median milliseconds per stage (preprocess, inference, decode+NMS) of each built INT8 "
                    "model, its FP32 TFLite build and onnxruntime FP32 on the same network, all with one "
                    "thread, interleaved image by image in one process.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root = shared_dir()
    parser.add_argument("--model", nargs="+", type=variant_arg, metavar="NAME",
                        help="built variants (default: all built)")
    parser.add_argument("--images", type=Path, default=root / "data" / "faces" if root else None,
                        metavar="DIR", help="photos to run on (default ../shared/data/faces)")
    parser.add_argument("--rounds", type=positive_int, default=5,
                        help="timed passes over the photos, after one warm-up pass (default 5)")
    parser.add_argument("--resize", choices=("auto", *RESIZE_MODES), default="auto",
                        help=f"resize mode (default auto: each model family's own, {DEFAULT_RESIZE} for "
                             "Ultra-Light, corner for the landmark models)")
    parser.add_argument("--crowds", nargs="+", metavar="NAME",
                        help="file names of crowd photos among --images, timed again on their own "
                             f"(default {' '.join(CROWD_PHOTOS)} when present)")
    parser.add_argument("--threshold", type=unit_float, default=0.6,
                        help="face score threshold of the decode stage (default 0.6; crowds at 0.3 test the NMS)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(func=run)


def _load_images(folder: Path | None) -> dict[str, Any]:
    """Photos by file name."""
    from rpi_agent.imaging.files import load_rgb
    from rpi_agent.imaging.listing import iter_image_paths

    if folder is None:
        raise ImageError("no --images given and ../shared/data/faces is not available")
    return {p.name: load_rgb(p) for p in iter_image_paths([folder])}


def _crowds(args: argparse.Namespace, images: dict[str, Any]) -> list[str]:
    """The crowd photos among the images: those named by ``--crowds`` (all must be there), or the defaults present."""
    from rpi_agent.evaluation.bench import CROWD_PHOTOS

    if args.crowds is None:
        return [name for name in CROWD_PHOTOS if name in images]
    missing = [name for name in args.crowds if name not in images]
    if missing:
        raise ImageError(f"--crowds {' '.join(missing)}: not among the photos of {args.images}")
    return list(args.crowds)


def _print_table(report: dict) -> None:
    env = report["environment"]
    print(f"{env['images']} images x {env['rounds']} rounds, 1 thread, resize {env['resize']} — median ms")
    print(f"{'variant':<18}{'engine':<18}{'preprocess':>11}{'inference':>11}{'decode':>9}")
    for record in report["variants"]:
        for engine, stages in record["median_ms"].items():
            cells = "".join(f"{stages[s]:>{w}.3f}" if s in stages else " " * w
                            for s, w in (("preprocess", 11), ("inference", 11), ("decode", 9)))
            print(f"{record['name']:<18}{engine:<18}{cells}")
        ratios = record["ratios"]
        print(f"{'':<18}int8/ORT {ratios['int8_vs_ort_fp32_inference']}  "
              f"decode/inference {ratios['decode_vs_inference']} (crowds {ratios['decode_vs_inference_crowds']})  "
              f"int8 {record['file_bytes']['int8']} B  acceptance {record['acceptance']}")
        steps = record["int8_decode_steps_ms"]
        print(f"{'':<18}int8 decode steps: " + "  ".join(f"{k} {v:g}" for k, v in steps.items()))


def run(args: argparse.Namespace) -> int:
    from rpi_agent.evaluation.bench import bench_variant, built_variants, environment

    names = args.model or built_variants()
    if not names:
        raise ModelError("no built models to benchmark: run `faceagent models build` first")
    photos = _load_images(args.images)
    if not photos:
        raise FaceAgentError(f"{args.images}: no images")
    crowds = _crowds(args, photos)
    resize = None if args.resize == "auto" else args.resize
    variants = []
    for name in names:
        log.info("benchmarking %s", name)
        variants.append(bench_variant(name, list(photos.values()), rounds=args.rounds, resize=resize,
                                      threshold=args.threshold, crowds=[photos[c] for c in crowds]))
    env = environment(len(photos), args.rounds, resize) | {"threshold": args.threshold, "crowds": crowds}
    report = {"environment": env, "variants": variants}
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        _print_table(report)
    return 0
