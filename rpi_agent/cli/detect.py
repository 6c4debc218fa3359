"""``faceagent detect``: faces in images and folders, as text, JSON lines or annotated copies."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from rpi_agent.detection.base import DetectionResult
from rpi_agent.detection.decoder import DecodeOptions
from rpi_agent.detection.face_detector import DEFAULT_MODEL, DEFAULT_RESIZE, LANDMARK_RESIZE, FaceDetector
from rpi_agent.detection.preprocess import RESIZE_MODES
from rpi_agent.domain import Detection
from rpi_agent.errors import FaceAgentError, ImageError, ModelError
from rpi_agent.imaging.annotate import draw_faces, write_jpeg
from rpi_agent.imaging.files import MAX_PIXELS, LoadedImage, read_image
from rpi_agent.imaging.listing import iter_image_paths
from rpi_agent.paths import VARIANT_NAME, check_model_spec

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


MAX_THREADS = 8  # as detector.threads in the config: more than the cores only adds contention


def thread_count(text: str) -> int:
    """argparse type: interpreter threads, 1 to :data:`MAX_THREADS`."""
    value = positive_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"at most {MAX_THREADS}, got {value}")
    return value


def model_arg(text: str) -> str:
    """argparse type: a built variant ``NAME``, ``NAME:int8``, ``NAME:fp32``, or a path to a model file."""
    try:
        check_model_spec(text)
    except ModelError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def variant_arg(text: str) -> str:
    """argparse type: a built variant's name (``RFB-320``, ``RFB-320@480x360``), no precision, no path."""
    if not VARIANT_NAME.match(text):
        raise argparse.ArgumentTypeError(f"not a variant name: {text[:60]!r} (e.g. RFB-320, slim-640; "
                                         "see `faceagent models list`)")
    return text


def add_model_arguments(parser: argparse.ArgumentParser, *, threshold: float) -> None:
    """The options every command that runs the detector shares."""
    parser.add_argument("--model", type=model_arg, default=DEFAULT_MODEL,
                        help="built variant NAME[:fp32] (see `faceagent models list`) or a .tflite path "
                             f"(default {DEFAULT_MODEL}, INT8)")
    parser.add_argument("--threshold", type=unit_float, default=threshold,
                        help=f"minimum face score (default {threshold})")
    parser.add_argument("--resize", choices=RESIZE_MODES,
                        help="fit frames to the network: keep aspect and pad around (letterbox) or "
                             "right and below (corner), or stretch (default: the model's best, "
                             f"{DEFAULT_RESIZE} for Ultra-Light, {LANDMARK_RESIZE} for landmark models)")
    parser.add_argument("--threads", type=thread_count, default=1,
                        help=f"interpreter threads, 1 to {MAX_THREADS} (default 1)")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "detect", help="detect faces in images or folders",
        description="Detect faces in image files or folders (recursively) and print them, boxes in the "
                    "pixels of each file. Bad files are reported and skipped; the exit status is 1 if any "
                    f"were. Images that decode to more than {MAX_PIXELS / 1e6:g} megapixels are refused "
                    "(JPEGs are decoded at down to 1/8 size first, so they may be larger).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image file or folder")
    add_model_arguments(parser, threshold=0.6)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON object per image on stdout")
    output.add_argument("--table", action="store_true",
                        help="one short row per image (image, faces, ms), then totals, instead of every box")
    parser.add_argument("--annotate", type=Path, metavar="OUT_DIR",
                        help="write a copy of each image with the faces (and landmarks) drawn into OUT_DIR")
    parser.add_argument("--landmarks", action="store_true",
                        help="require the five face landmarks (a model without them is refused); models "
                             "that have them always report them")
    parser.set_defaults(func=run)


def _record(path: Path, image: LoadedImage, result: DetectionResult) -> dict:
    # Boxes in the pixels of the file, also when a large JPEG was decoded at reduced size.
    sx, sy = image.scale
    return {
        "image": str(path),
        "width": image.size[0],
        "height": image.size[1],
        "faces": [_face(f, sx, sy) for f in result.faces],
        "ms": {k: round(v, 3) for k, v in result.ms.items()},
    }


def _face(face: Detection, sx: float, sy: float) -> dict:
    entry: dict = {"box": [round(v * k, 1) for v, k in zip(face.box, (sx, sy, sx, sy), strict=True)],
                   "score": round(face.score, 4)}
    if face.landmarks is not None:
        entry["landmarks"] = [[round(x * sx, 1), round(y * sy, 1)] for x, y in face.landmarks]
    return entry


def _image_paths(roots: list[Path], failures: list[str]) -> Iterator[Path]:
    """The images under each argument; a missing or empty one is a failure, and the next one follows."""
    for root in roots:
        try:
            yield from iter_image_paths([root])
        except ImageError as exc:
            failures.append(str(exc))
            log.warning("skipped %s", exc)


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
        options=DecodeOptions(score_threshold=args.threshold), landmarks=True if args.landmarks else None,
    )
    failures: list[str] = []
    rows: list[tuple[str, int, float]] = []
    count = 0
    for path in _image_paths(args.paths, failures):
        try:
            image = read_image(path)
        except ImageError as exc:
            failures.append(str(exc))
            log.warning("skipped %s", exc)
            continue
        rgb = image.rgb
        result = detector.detect(rgb)
        count += 1
        record = _record(path, image, result)
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
