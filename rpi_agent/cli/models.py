"""``faceagent models fetch|build|list``: pretrained weights and the TFLite builds."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from rpi_agent.errors import ConfigError, ModelError
from rpi_agent.models.fetch import WEIGHTS_ENV, fetch_weights
from rpi_agent.models.listing import list_models
from rpi_agent.models.manifest import load_manifest, parse_size
from rpi_agent.paths import auto_model, board_name

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  faceagent models fetch --from ../shared/models/upstream   # verify and cache local weights
  faceagent models fetch                                    # download from the pinned upstream commit
  faceagent models build RFB-320 slim-320                   # INT8 + FP32 TFLite into the cache
  faceagent models build RFB-320@480x360                    # 320 weights at another input size
  faceagent models build RFB-320 --size 640x480 --calib my_photos/ --force
  faceagent models list --json
  faceagent models auto --board "Raspberry Pi 4 Model B Rev 1.4"   # what detector.model = "auto" runs there
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``models`` command and its subcommands."""
    parser = subparsers.add_parser(
        "models", help="fetch weights, build INT8/FP32 TFLite models, list variants",
        description="Model variants of faceagent: fetch the pretrained weights (SHA-256 pinned), "
                    "build fully-integer INT8 and FP32 TFLite models into the cache, list them.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    def show_help(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=show_help)
    sub = parser.add_subparsers(dest="models_command", metavar="SUBCOMMAND", parser_class=type(parser))

    fetch = sub.add_parser("fetch", help="copy or download the .pth weights into the cache and verify them")
    fetch.add_argument("names", nargs="*", metavar="WEIGHTS",
                       help="weights file names (default: all in the manifest)")
    fetch.add_argument("--from", dest="source", metavar="DIR_OR_URL",
                       help=f"directory (or base URL) holding the .pth files; default ${WEIGHTS_ENV}, "
                            "else paths.weights_dir of --config, else the upstream repository at the "
                            "pinned commit")
    _add_config_option(fetch)
    fetch.set_defaults(func=run_fetch)

    build = sub.add_parser("build", help="build INT8 and FP32 TFLite models (in the build venv)")
    build.add_argument("names", nargs="*", metavar="NAME",
                       help="variants, e.g. RFB-320 slim-640 RFB-320@480x360 (default: all)")
    build.add_argument("--calib", type=Path, metavar="DIR",
                       help="calibration photos (default: the shared face photos)")
    build.add_argument("--size", type=_size_arg, metavar="WxH", help="build the variants at this input size")
    build.add_argument("--force", action="store_true", help="rebuild even when the inputs are unchanged")
    build.add_argument("--from", dest="source", metavar="DIR_OR_URL", help="where to fetch missing weights")
    _add_config_option(build)
    build.set_defaults(func=run_build)

    lister = sub.add_parser("list", help="list variants and their built files")
    lister.add_argument("--json", action="store_true", help="print a JSON array")
    lister.set_defaults(func=run_list)

    _add_auto(sub)


def _add_auto(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    auto = sub.add_parser(
        "auto", help="print the model detector.model = \"auto\" (the default) picks on this board",
        description="Print the model the daemon runs when detector.model is \"auto\", the default: "
                    "retinaface-mnet-640 on a Raspberry Pi 5 (also 500, CM5), RFB-landmark-320 on a Pi 4 "
                    "(also 400, CM4), RFB-320 elsewhere. The board is read from /proc/device-tree/model; "
                    "build the printed model on a PC with `faceagent models build NAME`.")
    auto.add_argument("--board", metavar="TEXT",
                      help="a board name as /proc/device-tree/model gives it, instead of this board's, "
                           "e.g. \"Raspberry Pi 5 Model B Rev 1.0\"")
    auto.set_defaults(func=run_auto)


def _size_arg(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except ModelError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="PATH",
                        help="a faceagent config file whose paths.weights_dir names the weights folder")


def _configured_weights_dir(config_path: Path | None) -> str | None:
    if config_path is None:
        return None
    from rpi_agent.config import load_config

    weights_dir = load_config(config_path, check_files=False).paths.weights_dir
    return str(weights_dir) if weights_dir is not None else None


def _source(args: argparse.Namespace) -> str | None:
    source = args.source or os.environ.get(WEIGHTS_ENV) or _configured_weights_dir(args.config)
    if source and "://" not in source and not Path(source).expanduser().is_dir():
        raise ConfigError(f"weights source is not a directory: {source}")
    return source


def run_fetch(args: argparse.Namespace) -> int:
    """Fetch and verify weights; prints one line per file."""
    results = fetch_weights(args.names or None, source=_source(args))
    for r in results:
        print(f"{r.name}  sha256 {r.sha256[:16]}...  ok  ({r.path}; from {r.origin})")
    return 0


def run_auto(args: argparse.Namespace) -> int:
    """Print the model ``auto`` means on this (or the given) board, then the board on stderr."""
    board = args.board if args.board is not None else board_name()
    print(auto_model(board))
    print(f"board: {board or 'no device tree name (not a Raspberry Pi)'}", file=sys.stderr)
    return 0


def run_build(args: argparse.Namespace) -> int:
    """Build the variants; prints progress lines and a summary."""
    from rpi_agent.models.build import build_models

    manifest = load_manifest()
    for name in args.names:
        manifest.variant(name)  # reject a bad name before fetching or starting anything
    results = build_models(args.names, calib_dir=args.calib, size=args.size, force=args.force,
                           weights_source=_source(args))
    for r in results:
        files = r.info["files"]
        print(f"{r.name}: int8 {files['int8']['path']} ({files['int8']['bytes']} bytes), "
              f"fp32 {files['fp32']['path']}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Print the variants as a table or JSON."""
    entries = list_models()
    if args.json:
        print(json.dumps(entries))
        return 0
    print(f"{'NAME':<20} {'INPUT':<9} {'INT8':<10} {'FP32':<5} PATH")
    for e in entries:
        size = f"{e['input'][0]}x{e['input'][1]}"
        int8 = f"{e['int8_bytes'] // 1024} KB" if e["int8_bytes"] else "-"
        fp32 = "yes" if e["fp32"] else "-"
        print(f"{e['name']:<20} {size:<9} {int8:<10} {fp32:<5} {e['int8'] or '(not built)'}")
    return 0
