"""``faceagent k210 build|flash``: kmodels for the Sipeed Maix (K210) companion board, and flashing it."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from rpi_agent.errors import ModelError

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("slim-320",)
KMODEL_CHOICES = ("4", "5", "all")
BUILD_EXAMPLES = """\
examples:
  scripts/k210_ci.sh                                 # builds ncc from source, the nncase venv, then this
  faceagent k210 build                               # V4 (for the firmware) and V5 of slim-320
  faceagent k210 build slim-320 --kmodel 4 --json
  faceagent k210 build RFB-320 --kmodel 5            # V5 only: nncase 1.9's simulator, no released firmware
  faceagent k210 build slim-landmark-320             # boxes and five landmarks per face
  faceagent k210 build retinaface-mnet-320 --kmodel 5   # 320x256: the camera frame in its top-left corner

V4 (ncc v0.2.0-beta2, built by scripts/k210/build_ncc.sh) is what MaixPy v0.6.x and CanMV load;
each build is run on the photos (V4 in nncase v0.2's runtime, V5 in nncase 1.9's simulator) and
refused below F1 0.95 against the INT8 TFLite; for landmark models the report adds the mean
landmark distance of matched faces over the face size. See k210/README.md for which firmware
loads which file.
"""
FLASH_EXAMPLES = """\
examples:
  faceagent k210 flash --port /dev/ttyUSB0 --firmware maixpy_v0.6.3_minimum_with_kmodel_v4_support.bin --dry-run
  faceagent k210 flash --port /dev/ttyUSB0 --board goE --firmware fw.bin --model-offset 0x300000
  faceagent k210 flash --port /dev/ttyUSB0 --firmware fw.bin --sd /media/$USER/SDCARD

Without --model-offset the kmodel goes on the SD card (main.py's default "/sd/faceagent.kmodel"):
--sd DIR copies main.py, facedet.py and the kmodel there, else the copy steps are printed.
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("k210", help="kmodels for the K210 companion board, and flashing it",
                                   description="K210 (Sipeed Maix) companion: kmodel builds and flashing.")
    sub = parser.add_subparsers(dest="k210_command", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="compile model variants to kmodels",
                           description="Compile model variants to K210 kmodels: V4 with ncc v0.2.0-beta2 (what "
                                       "released firmware loads) and V5 with nncase 1.9 (host simulation only).",
                           epilog=BUILD_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    build.add_argument("names", nargs="*", metavar="NAME", default=list(DEFAULT_MODELS),
                       help=f"model variants (default: {' '.join(DEFAULT_MODELS)}); input at most 320x240")
    build.add_argument("--kmodel", choices=KMODEL_CHOICES, default="all",
                       help="which kmodel format to build (default: all = 4 and 5)")
    build.add_argument("--ncc", type=Path, metavar="PATH",
                       help="ncc v0.2 binary for V4 (default: the one scripts/k210/build_ncc.sh built)")
    build.add_argument("--source", "--onnx", dest="onnx", type=Path, metavar="FILE",
                       help="compile this network instead (one NAME and one --kmodel only): a .tflite for V4 "
                            "(default <cache>/models/NAME/NAME-fp32.tflite), an .onnx for V5")
    build.add_argument("--calib", type=Path, metavar="DIR",
                       help="calibration photos (default ../shared/data/faces, as the TFLite build)")
    build.add_argument("--out", type=Path, metavar="DIR",
                       help="output folder (default <cache>/models/NAME/)")
    build.add_argument("--json", action="store_true", help="print one JSON line per built kmodel")
    build.set_defaults(func=run_build)
    from rpi_agent.k210.flash import register_flash

    register_flash(sub, FLASH_EXAMPLES)


def run_build(args: argparse.Namespace) -> int:
    """Build each requested kmodel; returns the exit code."""
    from rpi_agent.k210.build import build_v5
    from rpi_agent.k210.v4 import build_v4

    versions = ("4", "5") if args.kmodel == "all" else (args.kmodel,)
    if args.onnx is not None and (len(args.names) != 1 or len(versions) != 1):
        raise ModelError("--source needs exactly one model NAME and one --kmodel (4 or 5)")
    if args.calib is not None and not args.calib.is_dir():
        raise ModelError(f"{args.calib}: calibration folder does not exist")
    if args.ncc is not None and "4" not in versions:
        raise ModelError("--ncc is for V4 builds; drop it or use --kmodel 4")
    for name in args.names:
        for version in versions:
            if version == "4":
                result = build_v4(name, ncc=args.ncc, source=args.onnx, calib_dir=args.calib, out_dir=args.out)
            else:
                result = build_v5(name, onnx=args.onnx, calib_dir=args.calib, out_dir=args.out)
            _report(result, as_json=args.json)
    return 0


def _report(result: object, *, as_json: bool) -> None:
    from rpi_agent.k210.build import KmodelBuild

    assert isinstance(result, KmodelBuild)
    if as_json:
        print(json.dumps({"name": result.name, "kmodel_version": result.kmodel_version,
                          "path": str(result.path), "bytes": result.size_bytes, "ops": result.ops,
                          "seconds": result.seconds, "agreement_vs_int8_tflite": result.agreement}))
        return
    kpu = result.ops.get("kpu", {})
    cpu = {k: v for k, v in result.ops.get("cpu", {}).items() if k != "Call"}
    split = (f", KPU: {kpu.get('KPUConv2D', 0)} conv layers; CPU: {sum(cpu.values())} ops "
             f"({', '.join(f'{k} {v}' for k, v in cpu.items())})") if result.ops else ""
    print(f"{result.name}: {result.path} ({result.size_bytes / 1024:.0f} KB, "
          f"kmodel V{result.kmodel_version}{split}){_agreement_text(result.agreement)}")


def _agreement_text(check: dict[str, object] | None) -> str:
    if not check:
        return ""
    text = (f"; vs INT8 TFLite ({check['frames']} photos, score >= {check['score_threshold']}, IoU "
            f"{check['iou']}): {check['kmodel_faces']} vs {check['tflite_faces']} faces, {check['matched']} "
            f"matched, F1 {check['f1']}")
    if check.get("landmark_nme") is not None:
        text += (f", landmarks of {check['landmark_faces']} matched faces: mean distance "
                 f"{check['landmark_nme']} of the face size (worst {check['landmark_nme_max']})")
    return text
