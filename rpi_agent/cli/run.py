"""``faceagent run``: the daemon, with overrides for demos and tests."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from rpi_agent.cli.config_check import default_config_path
from rpi_agent.cli.detect import positive_int
from rpi_agent.cli.status_line import StatusLine
from rpi_agent.config import load_config
from rpi_agent.credentials import redact_url
from rpi_agent.errors import ConfigError

if TYPE_CHECKING:
    from rpi_agent.config import AppConfig
    from rpi_agent.runtime.daemon import Daemon

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  faceagent run                                   # /etc/faceagent/config.toml (what systemd runs)
  faceagent run --config config.toml -v
  faceagent run --config config.toml --source ../shared/data/faces --gpio-factory mock
  faceagent run --source /dev/video0 --mqtt-url mqtt://broker.lan:1883
  faceagent run --source rtsp://cam.lan/stream --mqtt-url mqtts://user:secret@broker.lan:8883
exit status: 0 after a clean stop (SIGTERM, SIGINT, end of input), 128+N after another signal N (SIGHUP:
  129, so systemd restarts it), 78 for a config error or a second daemon on the same state dir, 1 otherwise
"""


def mqtt_url_overrides(url: str) -> dict[str, Any]:
    """Config overrides from ``mqtt[s]://[user[:password]@]host[:port]``.

    Raises:
        ConfigError: Not such a URL.
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"--mqtt-url: {shown}: {exc}") from None
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(f"--mqtt-url: {shown}: expected mqtt[s]://[user:pass@]host[:port]")
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"--mqtt-url: {shown}: a path or query is not allowed")
    tls = parts.scheme == "mqtts"
    overrides: dict[str, Any] = {
        "mqtt.enabled": True, "mqtt.host": parts.hostname, "mqtt.port": port or (8883 if tls else 1883),
    }
    if tls:
        overrides["mqtt.tls"] = True
    if parts.username:
        overrides["mqtt.username"] = unquote(parts.username)
    if parts.password:
        # A password on the command line wins over the credential file and the environment.
        overrides.update({"mqtt.password": unquote(parts.password), "mqtt.password_credential": "",
                          "mqtt.password_env": ""})
    return overrides


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run", help="run the daemon (cameras → faces → MQTT events, GPIO actions)",
        description="Run the face detection daemon until a signal or the end of every source. Every "
                    "terminating signal (SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, ...) stops it in order: "
                    "relay LOCKED, open faces ended, `stopped` published. One daemon per state directory. "
                    "Under systemd (Type=notify) it reports readiness, status and watchdog pings. In a terminal "
                    "(stdout a TTY) a live line shows fps, faces in view, events and the MQTT outbox.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, metavar="PATH",
                        help="config file (default /etc/faceagent/config.toml if present, else built-in defaults)")
    parser.add_argument("--source", metavar="SPEC",
                        help="replace the first camera's source: a folder, video file, /dev/videoN, rtsp://..., "
                             "picamera[:N] or k210:/dev/ttyUSB0")
    parser.add_argument("--mqtt-url", metavar="URL", help="broker as mqtt[s]://[user:pass@]host[:port]")
    parser.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N frames per camera")
    parser.add_argument("--gpio-factory", choices=("mock", "lgpio", "rpigpio", "pigpio", "native"),
                        help="gpiozero pin factory (mock: simulated pins, for machines without GPIO)")
    parser.set_defaults(func=run)


def build_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.source:
        overrides["cameras[0].source"] = args.source
    if args.mqtt_url:
        overrides.update(mqtt_url_overrides(args.mqtt_url))
    return overrides


def run(args: argparse.Namespace) -> int:
    from rpi_agent.runtime.daemon import Daemon
    from rpi_agent.runtime.state_lock import StateLock

    path = args.config or default_config_path()
    config = load_config(path, overrides=build_overrides(args))
    if not getattr(args, "verbose", 0) and not getattr(args, "quiet", False):
        logging.getLogger().setLevel(config.logging.level)
    log.info("config %s", path or "(built-in defaults)")
    log.debug("config: %s", config.redacted_json())
    # Before any pin or broker session is taken: a second daemon must not touch either.
    with StateLock(config.paths.resolved_state_dir()):
        return _run_daemon(Daemon, config, args)


def _run_daemon(daemon_cls: type[Daemon], config: AppConfig, args: argparse.Namespace) -> int:
    if not sys.stdout.isatty():
        return daemon_cls(config, gpio_factory=args.gpio_factory, max_frames=args.max_frames).run()
    # A person at a terminal: one live line of figures under the log lines.
    line = StatusLine(sys.stdout)
    line.install(logging.getLogger())
    daemon = daemon_cls(config, gpio_factory=args.gpio_factory, max_frames=args.max_frames, on_status=line.update)
    try:
        return daemon.run()
    finally:
        line.update(daemon.watchers.figures())
        line.close()
