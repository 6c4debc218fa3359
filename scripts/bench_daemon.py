#!/usr/bin/env python3
"""Benchmark the daemon end to end against bare inference on the same frames; prints JSON.

Frames: the shared face photos letterboxed to a camera-like size (default 640x480) as JPEG, each shown
twice (the tracker's ``min_hits``, so faces become events) then a blank frame, the whole set repeated.
Two worker processes run on them, one after the other, so each peak RSS is its own:

- ``bare``: ``FaceDetector.detect`` (preprocess, TFLite, decode) in a loop, plus the interpreter's
  ``invoke`` alone;
- ``daemon``: the real :class:`rpi_agent.runtime.daemon.Daemon` on an image-folder source played as fast as it
  goes (fps 0, every frame processed), mock GPIO pins with a relay and LED, and a throwaway local
  Mosquitto when the binary is installed (else MQTT off; the JSON says which).

With ``--status`` the daemon runs three more ways, interleaved twice so drift of a shared machine hits
each alike: status page off, on with nobody watching, and on with a viewer fetching the JSON and the
frame every half second; the report gives each fps and their ratios to "off".

Usage:
    .venv/bin/python scripts/bench_daemon.py [--model RFB-320] [--threads 1] [--size 640x480] [--repeat 3]
                                             [--status]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from rpi_agent.config import parse_config
from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.detection.preprocess import fit_to_input
from rpi_agent.imaging.files import load_rgb
from rpi_agent.paths import shared_dir
from rpi_agent.runtime.daemon import Daemon


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def make_frames(folder: Path, *, width: int, height: int, repeat: int, only: list[str] | None = None) -> int:
    """Letterboxed photos, twice each then a blank frame, ``repeat`` times; returns the frame count."""
    from PIL import Image

    faces = shared_dir()
    if faces is None:
        sys.exit("bench_daemon: ../shared is missing (the face photos)")
    photos = sorted((faces / "data" / "faces").glob("*.jpg"), key=lambda p: int(p.stem))
    if only:
        photos = [p for p in photos if p.stem in only]
    blank = np.zeros((height, width, 3), np.uint8)
    count = 0
    for _ in range(repeat):
        for photo in photos:
            framed, _ = fit_to_input(load_rgb(photo), width, height, "letterbox")
            for rgb in (framed, framed, blank):
                count += 1
                Image.fromarray(rgb).save(folder / f"{count:05d}.jpg", quality=95)
    return count


def run_bare(folder: Path, model: str, threads: int) -> dict[str, object]:
    detector = FaceDetector.from_model(model, num_threads=threads)
    paths = sorted(folder.glob("*.jpg"))
    detector.detect(load_rgb(paths[0]))  # warm-up: first invoke allocates
    totals: dict[str, float] = {}
    elapsed = loading = 0.0
    for path in paths:
        # Frames are decoded one at a time (not all kept) so the peak RSS is the detector's.
        start = time.perf_counter()
        rgb = load_rgb(path)
        loaded = time.perf_counter()
        result = detector.detect(rgb)
        elapsed += time.perf_counter() - loaded
        loading += loaded - start
        for stage, ms in result.ms.items():
            totals[stage] = totals.get(stage, 0.0) + ms
    net_in, _ = fit_to_input(rgb, detector.detector.width, detector.detector.height, detector.resize)
    start = time.perf_counter()
    for _ in paths:
        detector.detector.run(net_in)
    invoke = time.perf_counter() - start
    return {
        "fps": round(len(paths) / elapsed, 2),
        "ms": {k: round(v / len(paths), 2) for k, v in totals.items()},
        "invoke_only_fps": round(len(paths) / invoke, 2),
        "jpeg_decode_ms": round(loading / len(paths) * 1e3, 2),
        "peak_rss_mb": peak_rss_mb(),
    }


class TimedDaemon(Daemon):
    """The daemon, noting when the first and last frames were processed and its final stats."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.first = self.last = 0.0
        self.final: dict[str, object] = {}
        self.watch = False
        self.views = 0

    def _publish(self, result, *, count=True):  # type: ignore[no-untyped-def]
        now = time.perf_counter()
        if not self.first and self.watch and self.watchers.server is not None:
            threading.Thread(target=self._viewer, args=(self.watchers.server.port,), daemon=True).start()
        self.first = self.first or now
        self.last = now
        super()._publish(result, count=count)

    def _viewer(self, port: int) -> None:
        """What an open page does: the JSON and the latest frame, twice a second."""
        while not self.stop_event.is_set() and not self.mailbox.all_finished():
            for path in ("api/status", "frame/bench.jpg"):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=5) as reply:
                    reply.read()
            self.views += 1
            time.sleep(0.5)

    def report_stats(self):  # type: ignore[no-untyped-def]
        self.final = super().report_stats()
        return self.final


def run_daemon(folder: Path, model: str, threads: int, mqtt_port: int | None, state: Path, *,
               status: str = "off") -> dict[str, object]:
    raw = {
        "detector": {"model": model, "threads": threads},
        "mqtt": {"enabled": mqtt_port is not None, "host": "127.0.0.1", "port": mqtt_port or 1883,
                 "client_id": f"bench-{os.getpid()}", "password_credential": "",
                 "home_assistant": {"enabled": True}},
        "cameras": [{"name": "bench", "source": str(folder), "fps": 0.0, "hold_frames": 1, "tracker": {"min_hits": 2},
                     "gpio": {"relay_pin": 17, "led_pin": 27, "relay_seconds": 0.5}}],
        "paths": {"state_dir": str(state)},
        "logging": {"stats_interval": 0.0},
        "status": {"enabled": status != "off", "port": 0},
    }
    daemon = TimedDaemon(parse_config(raw), gpio_factory="mock")
    daemon.watch = status == "watched"
    daemon.run()
    frames = int(daemon.final.get("frames_total", 0))  # type: ignore[arg-type]
    cameras = daemon.final.get("cameras", {})
    ms = cameras.get("bench", {}).get("ms", {}) if isinstance(cameras, dict) else {}
    return {
        "fps": round((frames - 1) / (daemon.last - daemon.first), 2) if frames > 1 else 0.0,
        "frames": frames,
        "events": daemon.final.get("events_total"),
        "ms": ms,
        "peak_rss_mb": peak_rss_mb(),
        "mqtt": f"mosquitto on 127.0.0.1:{mqtt_port}" if mqtt_port else "disabled (mosquitto not installed)",
        "status_page": status, "page_views": daemon.views,
    }


def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen[bytes], int] | None:
    binary = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None)
    if binary is None:
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conf = workdir / "mosquitto.conf"
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(f"{user}listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return None


def worker(args: argparse.Namespace) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    folder = Path(args.folder)
    if args.worker == "bare":
        result = run_bare(folder, args.model, args.threads)
    else:
        result = run_daemon(folder, args.model, args.threads, args.mqtt_port, Path(args.state), status=args.status_mode)
    print(json.dumps(result))


def spawn(kind: str, args: argparse.Namespace, folder: Path, extra: list[str]) -> dict[str, object]:
    command = [sys.executable, __file__, "--worker", kind, "--folder", str(folder), "--model", args.model,
               "--threads", str(args.threads), *extra]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"bench_daemon: {kind} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def board_frame_us(calls: int = 20000) -> float:
    """Microseconds the frame loop spends handing one frame to an unwatched status page (no events)."""
    from rpi_agent.domain import Frame, FrameResult, TrackedFace
    from rpi_agent.status import StatusBoard

    board = StatusBoard(["bench"])
    faces = tuple(TrackedFace(id=str(k), camera="bench", box=(10.0 * k, 10.0, 10.0 * k + 40, 60.0), score=0.9,
                              top_score=0.9, area=2000.0) for k in range(3))
    result = FrameResult(Frame("bench", 0, 0.0, np.zeros((480, 640, 3), np.uint8), 640, 480), faces, (), {})
    start = time.perf_counter()
    for _ in range(calls):
        board.frame(result, ms={"total": 2.0, "sinks": 0.5})
    return round((time.perf_counter() - start) / calls * 1e6, 2)


def compare_status(args: argparse.Namespace, folder: Path, extra: list[str]) -> dict[str, object]:
    """Daemon fps with the page off, idle and watched, each run twice, interleaved; medians and ratios."""
    modes = ("off", "idle", "watched")
    runs: dict[str, list[dict[str, object]]] = {mode: [] for mode in modes}
    for _ in range(2):
        for mode in modes:
            runs[mode].append(spawn("daemon", args, folder, [*extra, "--status-mode", mode]))
    fps = {mode: float(np.median([float(r["fps"]) for r in runs[mode]])) for mode in modes}
    board_us = board_frame_us()
    return {
        "board_frame_us": board_us,
        "board_share_of_frame": round(board_us * 1e-6 * fps["off"], 5),
        "fps": {mode: [r["fps"] for r in runs[mode]] for mode in modes},
        "page_views_watched": [r["page_views"] for r in runs["watched"]],
        "idle_vs_off_fps": round(fps["idle"] / fps["off"], 3),
        "watched_vs_off_fps": round(fps["watched"] / fps["off"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="RFB-320")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", default="640x480", help="frame size WxH (camera-like)")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the photos")
    parser.add_argument("--photos", help="only these photos, e.g. 5,13,22 (few faces, like a door camera)")
    parser.add_argument("--status", action="store_true",
                        help="also compare the status page off / on and idle / on and watched")
    parser.add_argument("--worker", choices=("bare", "daemon"), help=argparse.SUPPRESS)
    parser.add_argument("--status-mode", default="off", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--mqtt-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="faceagent-bench-") as tmp:
        tmpdir = Path(tmp)
        folder = tmpdir / "frames"
        folder.mkdir()
        only = args.photos.split(",") if args.photos else None
        frames = make_frames(folder, width=width, height=height, repeat=args.repeat, only=only)
        bare = spawn("bare", args, folder, [])
        broker = start_mosquitto(tmpdir)
        extra = ["--state", str(tmpdir / "state")] + (["--mqtt-port", str(broker[1])] if broker else [])
        try:
            daemon = spawn("daemon", args, folder, extra)
            status = compare_status(args, folder, extra) if args.status else None
        finally:
            if broker:
                broker[0].terminate()
                broker[0].wait(10)
    report = {
        "model": args.model, "threads": args.threads, "frame_size": f"{width}x{height}", "frames": frames,
        "photos": args.photos or "all",
        "frames_with_faces": frames * 2 // 3, "bare_inference": bare, "daemon_end_to_end": daemon,
        "daemon_vs_bare_fps": round(float(daemon["fps"]) / float(bare["fps"]), 3),
        **({"status_page": status} if status else {}),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
