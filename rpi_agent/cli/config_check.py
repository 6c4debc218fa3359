"""``faceagent check-config``: validate a config file without starting anything."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from rpi_agent.config import DEFAULT_PATHS, load_config
from rpi_agent.errors import ConfigError

EXAMPLES = """\
examples:
  faceagent check-config                         # /etc/faceagent/config.toml
  faceagent check-config config.toml
  faceagent check-config config.toml --print     # the validated tree, secrets masked, as JSON
exit status: 0 valid, 78 invalid (one line naming the key)
"""


def default_config_path() -> Path | None:
    """The first existing file of :data:`DEFAULT_PATHS`, else ``None``."""
    return next((p for p in DEFAULT_PATHS if p.is_file()), None)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "check-config", help="validate a config file",
        description="Validate a config file without starting the daemon: types, ranges, zones, pins, and "
                    "what `run` will open (the model, loaded and tried once; file and folder sources; the "
                    "state directory; the TLS files).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", nargs="?", type=Path, metavar="PATH",
                        help=f"config file (default {DEFAULT_PATHS[0]})")
    parser.add_argument("--print", dest="print_tree", action="store_true",
                        help="print the validated config (defaults filled in, secrets masked) as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.verbose:
        # The model is loaded to check it; its load messages are noise around the one result line.
        logging.getLogger().setLevel(logging.WARNING)
    path = args.path or default_config_path()
    if path is None:
        raise ConfigError(f"{DEFAULT_PATHS[0]}: config file not found (give a PATH)")
    config = load_config(path)
    if args.print_tree:
        print(json.dumps(config.redacted(), indent=2))
    cameras = ", ".join(f"{c.name} ({c.source})" for c in config.cameras)
    print(f"{path}: OK, {len(config.cameras)} camera(s): {cameras}")
    return 0
