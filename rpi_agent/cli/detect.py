"""``faceagent detect``: faces in images and folders, as text, JSON lines or annotated copies."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from rpi_agent.detection.decoder import DecodeOptions
from rpi_agent.detection.face_detector import DEFAULT_MODEL, DEFAULT_RESIZE, FaceDetector
from rpi_agent.detection.preprocess import RESIZE_MODES
from rpi_agent.errors import FaceAgentError, ImageError
from rpi_agent.imaging.annotate import draw_faces, write_jpeg
from rpi_agent.imaging.files import load_rgb
from rpi_agent.imaging.listing import iter_image_paths

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  faceagent detect photo.jpg
  faceagent detect ../shared/data/faces --json
  faceagent detect ../shared/data/faces --table           # image, faces, ms per image, then totals
  faceagent detect photos/ --model slim-320 --threshold 0.7 --annotate out/
  faceagent detect photo.jpg --model RFB-320:fp32          # the FP32 build, for comparison
  faceagent detect photo.jpg --model path/to/any.tflite     # e.g. upstream's FP32 .tflite
"""


def unit_float(text: str) -> float:
    """argparse type: a float in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_model_arguments(parser: argparse.ArgumentParser, *, threshold: float) -> None:
    """The options every command that runs the detector shares."""
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="built variant NAME[:fp32] (see `faceagent models list`) or a .tflite path "
                             f"(default {DEFAULT_MODEL}, INT8)")
    parser.add_argument("--threshold", type=unit_float, default=threshold,
                        help=f"minimum face score (default {threshold})")
    parser.add_argument("--resize", choices=RESIZE_MODES, default=DEFAULT_RESIZE,
                        help="fit frames to the network: keep aspect and pad (letterbox) or stretch "
                             f"(default {DEFAULT_RESIZE})")
    parser.add_argument("--threads", type=positive_int, default=1, help="interpreter threads (default 1)")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "detect", help="detect faces in images or folders",
        description="Detect faces in image files or folders (recursively) and print them. "
                    "Bad files are reported and skipped; the exit status is 1 if any were.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image file or folder")
    add_model_arguments(parser, threshold=0.6)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON object per image on stdout")
    output.add_argument("--table", action="store_true",
                        help="one short row per image (image, faces, ms), then totals, instead of every box")
    parser.add_argument("--annotate", type=Path, metavar="OUT_DIR",
                        help="write a copy of each image with the faces drawn into OUT_DIR")
    parser.set_defaults(func=run)


def _record(path: Path, rgb_shape: tuple[int, ...], result: object) -> dict:
    from rpi_agent.detection.base import DetectionResult

    assert isinstance(result, DetectionResult)
    return {
        "image": str(path),
        "width": rgb_shape[1],
        "height": rgb_shape[0],
        "faces": [{"box": [round(v, 1) for v in f.box], "score": round(f.score, 4)} for f in result.faces],
        "ms": {k: round(v, 3) for k, v in result.ms.items()},
    }


def _annotated_path(out_dir: Path, path: Path, roots: list[Path]) -> Path:
    for root in roots:
        if root.is_dir() and path.is_relative_to(root):
            return out_dir / path.relative_to(root).with_suffix(".jpg")
    return out_dir / path.with_suffix(".jpg").name


def print_table(rows: list[tuple[str, int, float]]) -> None:
    """``image  faces  ms`` rows, then the totals and the median time."""
    if not rows:
        return
    width = max(len("image"), *(len(name) for name, _, _ in rows))
    print(f"{'image':<{width}}  {'faces':>5}  {'ms':>6}")
    for name, faces, ms in rows:
        print(f"{name:<{width}}  {faces:>5}  {ms:>6.1f}")
    median = sorted(ms for _, _, ms in rows)[len(rows) // 2]
    print(f"{len(rows)} image(s), {sum(f for _, f, _ in rows)} face(s), median {median:.1f} ms per image")


def run(args: argparse.Namespace) -> int:
    detector = FaceDetector.from_model(
        args.model, num_threads=args.threads, resize=args.resize,
        options=DecodeOptions(score_threshold=args.threshold),
    )
    failures: list[str] = []
    rows: list[tuple[str, int, float]] = []
    count = 0
    for path in iter_image_paths(args.paths):
        try:
            rgb = load_rgb(path)
        except ImageError as exc:
            failures.append(str(exc))
            log.warning("skipped %s", exc)
            continue
        result = detector.detect(rgb)
        count += 1
        record = _record(path, rgb.shape, result)
        if args.json:
            print(json.dumps(record), flush=True)
        elif args.table:
            rows.append((_annotated_path(Path(), path, args.paths).with_suffix(path.suffix).as_posix(),
                         len(result.faces), sum(result.ms.values())))
        else:
            boxes = "  ".join(f"[{', '.join(f'{v:.0f}' for v in f['box'])}] {f['score']:.2f}" for f in record["faces"])
            print(f"{path}: {len(result.faces)} face(s)  {boxes}".rstrip(), flush=True)
        if args.annotate:
            write_jpeg(_annotated_path(args.annotate, path, args.paths), draw_faces(rgb, result.faces))
    print_table(rows)
    if failures:
        print(f"faceagent: {len(failures)} of {count + len(failures)} image(s) could not be read:", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
        return 1
    if count == 0:
        raise FaceAgentError("no images processed")
    return 0
