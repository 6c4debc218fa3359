"""``faceagent k210 build``: kmodels for the Sipeed Maix (K210) companion board."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from rpi_agent.errors import ModelError

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("slim-320", "RFB-320")
EXAMPLES = """\
examples:
  scripts/k210_env.sh && faceagent k210 build                # V5 kmodels of slim-320 and RFB-320
  faceagent k210 build RFB-320 --json
  faceagent k210 build slim-320 --ncc ~/ncc/ncc              # V4 (MaixPy v0.6) with ncc v0.2.0-beta4

V5 (nncase 1.9) runs in nncase's simulator but MaixPy v0.6 cannot load it; flash the V4 file.
See k210/README.md for the firmware, the flashing commands and what is not verified on hardware.
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("k210", help="build kmodels for the K210 companion board",
                                   description="K210 (Sipeed Maix) companion: kmodel builds.")
    sub = parser.add_subparsers(dest="k210_command", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="compile model variants to kmodels",
                           description="Compile model variants to K210 kmodels: V5 with nncase 1.9 "
                                       "(its own venv, scripts/k210_env.sh) or V4 with an ncc binary.",
                           epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    build.add_argument("names", nargs="*", metavar="NAME", default=list(DEFAULT_MODELS),
                       help=f"model variants (default: {' '.join(DEFAULT_MODELS)}); input at most 320x240")
    build.add_argument("--ncc", type=Path, metavar="PATH",
                       help="ncc v0.2.0-beta4 binary: build V4 kmodels (MaixPy v0.6) instead of V5")
    build.add_argument("--source", "--onnx", dest="onnx", type=Path, metavar="FILE",
                       help="compile this network instead of the built/upstream ONNX (one NAME only); "
                            "with --ncc also a .tflite, e.g. <cache>/models/NAME/NAME-fp32.tflite")
    build.add_argument("--calib", type=Path, metavar="DIR",
                       help="calibration photos (default ../shared/data/faces, as the TFLite build)")
    build.add_argument("--out", type=Path, metavar="DIR",
                       help="output folder (default <cache>/models/NAME/)")
    build.add_argument("--json", action="store_true", help="print one JSON line per built kmodel")
    build.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    """Build each requested kmodel; returns the exit code."""
    from rpi_agent.k210.build import build_v4, build_v5

    if args.onnx is not None and len(args.names) != 1:
        raise ModelError("--source needs exactly one model NAME")
    if args.calib is not None and not args.calib.is_dir():
        raise ModelError(f"{args.calib}: calibration folder does not exist")
    for name in args.names:
        if args.ncc is not None:
            result = build_v4(name, ncc=args.ncc, onnx=args.onnx, calib_dir=args.calib, out_dir=args.out)
        else:
            result = build_v5(name, onnx=args.onnx, calib_dir=args.calib, out_dir=args.out)
        if args.json:
            print(json.dumps({"name": result.name, "kmodel_version": result.kmodel_version,
                              "path": str(result.path), "bytes": result.size_bytes, "ops": result.ops,
                              "seconds": result.seconds}))
        else:
            kpu = result.ops.get("kpu", {})
            cpu = {k: v for k, v in result.ops.get("cpu", {}).items() if k != "Call"}
            split = (f", KPU: {kpu.get('KPUConv2D', 0)} conv layers; CPU: {sum(cpu.values())} ops "
                     f"({', '.join(f'{k} {v}' for k, v in cpu.items())})") if result.ops else ""
            print(f"{result.name}: {result.path} ({result.size_bytes / 1024:.0f} KB, "
                  f"kmodel V{result.kmodel_version}{split})")
    return 0
