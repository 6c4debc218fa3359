"""The ``faceagent`` command: subcommands, logging, and one-line errors.

Each subcommand lives in its own module with ``register(subparsers)``; this module is the
only place logging is configured and the only place errors become exit codes.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys

from rpi_agent import __version__
from rpi_agent.errors import ConfigError, FaceAgentError

EX_CONFIG = 78  # sysexits.h: configuration error
MAX_MESSAGE = 400
COMMAND_MODULES: tuple[str, ...] = ("detect", "k210", "models", "run", "config_check", "eval", "bench")

log = logging.getLogger("faceagent")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="faceagent",
        description=(
            "Edge face detection: INT8 Ultra-Light face detector on a Raspberry Pi or K210, "
            "face events over MQTT, GPIO actions. Detection is not identification."
        ),
        epilog="Run `faceagent COMMAND --help` for each command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"faceagent {__version__}")
    _add_log_options(parser, default=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"rpi_agent.cli.{name}").register(sub)
    for command_parser in sub.choices.values():
        _add_log_options(command_parser, default=False)
    return parser


def _add_log_options(parser: argparse.ArgumentParser, *, default: bool) -> None:
    # Accepted before and after the subcommand; only the top level sets the defaults.
    group = parser.add_argument_group("logging")
    group.add_argument("-v", "--verbose", action="count", default=0 if default else argparse.SUPPRESS,
                       help="more log detail (-vv for debug)")
    group.add_argument("-q", "--quiet", action="store_true", default=False if default else argparse.SUPPRESS,
                       help="only warnings and errors")


def configure_logging(verbose: int, quiet: bool) -> None:
    """Log to stderr without timestamps: journald adds its own, and the level shows as a prefix."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def one_line(message: object, limit: int = MAX_MESSAGE) -> str:
    """An error message as one line of at most ``limit`` characters (a value quoted in it may be huge)."""
    text = " ".join(str(message).split()) or type(message).__name__
    return text if len(text) <= limit else f"{text[:limit - 30]}... ({len(text)} characters)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    configure_logging(args.verbose, args.quiet)
    _tolerate_undecodable_names()
    return _run_command(args)


def _tolerate_undecodable_names() -> None:
    # A file name that is not UTF-8 arrives as lone surrogates; print it back as the bytes it was.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        with contextlib.suppress(ValueError, OSError):  # a stream that cannot change it keeps its own
            reconfigure(errors="surrogateescape")


def _run_command(args: argparse.Namespace) -> int:
    """The subcommand's exit status; every error it raises on purpose becomes one line on stderr."""
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"faceagent: config error: {one_line(exc)}", file=sys.stderr)
        return EX_CONFIG
    except FaceAgentError as exc:
        print(f"faceagent: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except OSError as exc:
        # The machine, not the input: a full disk, a name too long for the file system, a device gone.
        log.debug("OS error", exc_info=True)
        print(f"faceagent: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("faceagent: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
