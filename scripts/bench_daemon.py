#!/usr/bin/env python3
"""Benchmark the daemon end to end against a bare decode + detect loop on the same frames; prints JSON.

Frames: the shared face photos letterboxed to a camera-like size (default 640x480) as JPEG, each shown
twice (the tracker's ``min_hits``, so faces become events) then a blank frame, the whole set repeated.
Both sides get the same frames, the same decoding and the same detector built from the same config:

- ``bare``: a reader thread decodes each JPEG exactly as the daemon's image-folder source does
  (``orient(load_rgb(path))``) into a one-slot queue, and the main thread runs ``FaceDetector.detect``
  with the daemon's detector settings: the daemon's own threads, without the daemon;
- ``daemon``: the real :class:`rpi_agent.runtime.daemon.Daemon` on an image-folder source played as
  fast as it goes (fps 0, every frame processed), mock GPIO pins with a relay and an LED, a throwaway
  local Mosquitto when the binary is installed (else MQTT off; the JSON says which), and the log of
  ``faceagent run`` (INFO lines to stderr, read by this script as journald would).

Each worker is its own process, so each peak RSS (``ru_maxrss``) is its own and the bare one holds only
what decoding and detection import. The workers alternate for ``--rounds`` rounds, so load from other
processes drifts onto both alike; the figures are the medians over the rounds, the ratio is the ratio of
the medians (each round's ratio is listed too). fps is frames processed after the first one, divided by
the time from the first frame's result to the last one's; for the daemon, to the moment the broker has
acknowledged every event (a daemon whose MQTT thread falls behind is no faster than its delivery;
``frame_loop_fps`` leaves the delivery out). ``bare_sequential`` (decode then detect on one thread) is
run once per round too, for reference. Besides the process's CPU per frame, the main and reader
threads' own CPU per frame are given, each thread's context switches (voluntary: it blocked, on the GIL,
a queue or a socket; involuntary: the kernel gave its core to another thread), and the resident memory
by mapping (each library, and ``[anon]``) at the end of each worker. ``broker_cpu_ms_per_frame`` is the
CPU the local Mosquitto used during each daemon run (from its ``/proc/<pid>/stat``, in clock ticks of
10 ms), per frame: it runs on the same cores, so it is part of what the daemon costs here and not
counted in the daemon's own CPU (0 for the bare loop).

``stage_clock`` gives each frame-loop stage's wall time and the thread's CPU time a call (resize,
inference, decode, the daemon's tracker), and ``stage_wait_us_per_frame`` their difference summed: what
the frame loop waited inside its stages, for the GIL after each call that gives it up, or for a core.

Each round also measures the MQTT floor on the same broker (``bench_mqtt_floor.py``'s bare paho client,
QoS 1, MQTT 5, ``--floor-messages`` event-sized messages): ``daemon_vs_bare_ceiling`` is the highest
daemon / bare ratio that paho-mqtt and the broker alone leave at this run's events a frame, when the bare
loop keeps every core busy (``bare_cores_busy``, its CPU a frame times its fps; fps then follows CPU a
frame): ``bare / (bare + events x (client + broker))``. ``daemon_vs_ceiling`` is the daemon's ratio
against it: how much of what is left is the daemon's own work.

With ``--status`` each round also runs the daemon three more ways, in an order that rotates from round
to round so drift hits each alike: status page off, on with nobody watching (``idle``), and on with a
viewer fetching ``api/status`` and ``frame/<camera>.jpg`` every half second (``watched``, from the
first frame on); the report gives each median fps and its ratio to "off", the page views, and what
handing a frame to an unwatched page costs the frame loop (``board_frame_us``, timed in this process).

Usage:
    .venv/bin/python scripts/bench_daemon.py [--model RFB-320] [--size 640x480] [--repeat 2] [--rounds 3]
                                             [--photos 5,13,22] [--floor-messages 3000] [--status]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_broker import process_cpu_s, start_mosquitto, stat_cpu_s
from bench_mqtt_floor import PAYLOAD_BYTES, WINDOW, ceiling, one_round
from bench_status_page import STATUS_MODES, status_report, view_page

from rpi_agent.evaluation.machine import cpu_model

TARGET_RATIO = 0.90
TARGET_RSS_MB = 80.0


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def rss_by_mapping(top: int = 8) -> dict[str, float]:
    """Resident MB of this process by what is mapped (a library's file name; ``[anon]`` for heap,
    thread stacks and other anonymous memory), the largest ``top`` and the rest."""
    found: dict[str, int] = {}
    name = "[anon]"
    try:
        lines = Path("/proc/self/smaps").read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5 and not fields[0].endswith(":"):
            path = fields[5] if len(fields) > 5 else ""
            name = Path(path).name.split(".")[0] if path.startswith("/") else "[anon]"
        elif fields and fields[0] == "Rss:":
            found[name] = found.get(name, 0) + int(fields[1])
    ranked = sorted(found.items(), key=lambda item: -item[1])
    report = {key: round(kib / 1024, 1) for key, kib in ranked[:top]}
    report["rest"] = round(sum(kib for _, kib in ranked[top:]) / 1024, 1)
    return report


def thread_stats() -> tuple[dict[str, float], dict[str, list[int]]]:
    """Per thread name, over the live threads of this process: CPU seconds (user + system), and
    context switches ``[voluntary, involuntary]``.

    Voluntary: the thread blocked (the GIL, a queue, a socket); involuntary: the kernel took its core
    away for another runnable thread or process.
    """
    names = {t.native_id: t.name for t in threading.enumerate()}
    cpu: dict[str, float] = {}
    switches: dict[str, list[int]] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            seconds = stat_cpu_s(task / "stat")
            lines = (task / "status").read_text().splitlines()
        except OSError:
            continue
        name = names.get(int(task.name), "other")
        cpu[name] = round(cpu.get(name, 0.0) + seconds, 2)
        counts = [int(line.split()[1]) for line in lines if line.startswith(("voluntary_", "nonvoluntary_"))]
        total = switches.setdefault(name, [0, 0])
        for index, count in enumerate(counts[:2]):
            total[index] += count
    return cpu, switches


class StageClock:
    """Wall time and the calling thread's CPU time of each frame-loop stage, per call, in this process.

    Wraps the stages the frame loop runs (resize, inference, decode, and the daemon's tracker) where
    they are looked up. A stage whose wall time exceeds its CPU time waited: for the GIL after giving
    it up (a resize, an inference), or for a core.
    """

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}  # stage -> [wall s, cpu s, calls]

    def install(self) -> StageClock:
        from rpi_agent.detection import face_detector
        from rpi_agent.detection.prepared import PreparedDecoder
        from rpi_agent.detection.tflite import TFLiteDetector
        from rpi_agent.tracking.tracker import Tracker

        face_detector.fit_to_input = self._wrap("preprocess", face_detector.fit_to_input)  # type: ignore[assignment]
        TFLiteDetector.run = self._wrap("inference", TFLiteDetector.run)  # type: ignore[method-assign]
        PreparedDecoder.faces = self._wrap("decode", PreparedDecoder.faces)  # type: ignore[method-assign]
        Tracker.update = self._wrap("track", Tracker.update)  # type: ignore[method-assign]
        return self

    def _wrap(self, stage: str, function: Any) -> Any:
        totals = self.totals.setdefault(stage, [0.0, 0.0, 0])

        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                totals[0] += time.perf_counter() - wall
                totals[1] += time.thread_time() - cpu
                totals[2] += 1

        return timed

    def reset(self) -> None:
        """Start counting afresh (after a first frame that imports and allocates)."""
        for totals in self.totals.values():
            totals[:] = [0.0, 0.0, 0]

    def report(self) -> dict[str, Any]:
        """Per stage ``{"wall_us", "cpu_us"}`` a call, and ``wait_us``: wall minus CPU over all, a frame."""
        stages = {name: {"wall_us": round(wall / calls * 1e6, 1), "cpu_us": round(cpu / calls * 1e6, 1)}
                  for name, (wall, cpu, calls) in self.totals.items() if calls}
        return {"stages": stages, "wait_us": round(sum(s["wall_us"] - s["cpu_us"] for s in stages.values()), 1)}


def make_frames(folder: Path, *, width: int, height: int, repeat: int, only: list[str] | None = None) -> int:
    """Letterboxed photos, twice each then a blank frame, ``repeat`` times; returns the frame count."""
    import numpy as np
    from PIL import Image

    from rpi_agent.detection.preprocess import fit_to_input
    from rpi_agent.imaging.files import load_rgb
    from rpi_agent.paths import shared_dir

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


def bench_config(folder: Path, model: str, threads: int, mqtt_port: int | None, state: Path, *,
                 status: str = "off") -> Any:
    from rpi_agent.config import parse_config

    return parse_config({
        "detector": {"model": model, "threads": threads},
        "mqtt": {"enabled": mqtt_port is not None, "host": "127.0.0.1", "port": mqtt_port or 1883,
                 "client_id": f"bench-{os.getpid()}", "password_credential": "",
                 "home_assistant": {"enabled": True}},
        "cameras": [{"name": "bench", "source": str(folder), "fps": 0.0, "hold_frames": 1, "tracker": {"min_hits": 2},
                     "gpio": {"relay_pin": 17, "led_pin": 27, "relay_seconds": 0.5}}],
        "paths": {"state_dir": str(state)},
        "status": {"enabled": status != "off", "port": 0},
    })


def run_bare(folder: Path, model: str, threads: int, *, pipelined: bool) -> dict[str, object]:
    """Decode (on a reader thread when ``pipelined``, as the daemon does) and detect every frame."""
    import queue

    from rpi_agent.detection.decoder import DecodeOptions
    from rpi_agent.detection.face_detector import FaceDetector
    from rpi_agent.imaging.files import load_rgb
    from rpi_agent.sources.common import orient

    clock = StageClock().install()
    cfg = bench_config(folder, model, threads, None, folder).detector
    # The daemon's detector settings (runtime.daemon.build_face_detector), without importing the daemon.
    detector = FaceDetector.from_model(
        cfg.model, num_threads=cfg.threads, resize=None if cfg.resize == "auto" else cfg.resize,
        options=DecodeOptions(score_threshold=cfg.threshold, iou_threshold=cfg.nms_iou, box_voting=cfg.box_voting))
    paths = sorted(folder.glob("*.jpg"))
    detector.detect(load_rgb(paths[0]))  # warm-up: the first invoke allocates (the daemon's is timed out too)
    clock.reset()
    slot: queue.Queue[Any] = queue.Queue(maxsize=1)

    reader_cpu = [0.0]

    def read() -> None:
        for path in paths:
            slot.put(orient(load_rgb(path)))
        reader_cpu[0] = time.thread_time()

    if pipelined:
        threading.Thread(target=read, name="reader", daemon=True).start()
    stamps, cpu, main_cpu, faces = [], [], [], 0
    totals = dict.fromkeys(("preprocess", "inference", "decode"), 0.0)
    for path in paths:
        rgb = slot.get() if pipelined else orient(load_rgb(path))
        found = detector.detect(rgb)
        faces += len(found.faces)
        for stage, ms in found.ms.items():
            totals[stage] = totals.get(stage, 0.0) + ms
        stamps.append(time.perf_counter())
        cpu.append(time.process_time())
        main_cpu.append(time.thread_time())
    threads, switches = thread_stats()
    return {"fps": round((len(paths) - 1) / (stamps[-1] - stamps[0]), 2), "frames": len(paths), "faces": faces,
            "stage_clock": clock.report(),
            "ms": {stage: round(total / len(paths), 2) for stage, total in totals.items()},
            "cpu_ms_per_frame": round((cpu[-1] - cpu[0]) / (len(paths) - 1) * 1e3, 3), "cpu_s_by_thread": threads,
            "context_switches_by_thread": switches,
            "main_thread_cpu_ms_per_frame": round((main_cpu[-1] - main_cpu[0]) / (len(paths) - 1) * 1e3, 3),
            "reader_cpu_ms_per_frame": round(reader_cpu[0] / len(paths) * 1e3, 3) if pipelined else None,
            "peak_rss_mb": peak_rss_mb(), "rss_by_mapping_mb": rss_by_mapping()}


def timed_daemon(config: Any, *, watch: bool, clock: StageClock) -> Any:
    """The daemon, noting when the first and last frames were processed and its final stats."""
    from rpi_agent.runtime.daemon import Daemon

    class TimedDaemon(Daemon):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            self.first = self.last = self.delivered = self.cpu_first = self.cpu_delivered = 0.0
            self.main_first = self.main_last = 0.0
            self.reader_cpu: dict[str, float] = {}
            self.rss_map: dict[str, float] = {}
            self.threads: dict[str, float] = {}
            self.switches: dict[str, list[int]] = {}
            self.final: dict[str, object] = {}
            self.views = [0]  # page views so far, counted by the viewer thread

        def _publish(self, result, *, count=True):  # type: ignore[no-untyped-def]
            super()._publish(result, count=count)
            if count:  # frames only: the closing results of the shutdown are no frames
                self.last = time.perf_counter()
                if not self.first and watch and self.watchers.server is not None:
                    threading.Thread(target=view_page, name="viewer", daemon=True, args=(
                        self.watchers.server.port, "bench", self._frames_done, self.views)).start()
                if not self.first:
                    clock.reset()
                self.first = self.first or self.last
                self.cpu_first = self.cpu_first or time.process_time()
                self.main_last = time.thread_time()
                self.main_first = self.main_first or self.main_last

        def _build_cameras(self) -> None:
            super()._build_cameras()
            for reader in self.readers:  # the reader thread's own CPU, noted as its source ends
                reader.source.frames = self._timed_frames(reader.source.frames, reader.source.camera)  # type: ignore[method-assign]

        def _timed_frames(self, frames, camera):  # type: ignore[no-untyped-def]
            def timed():  # type: ignore[no-untyped-def]
                yield from frames()
                self.reader_cpu[camera] = time.thread_time()
            return timed

        def _frames_done(self) -> bool:
            return self.stop_event.is_set() or self.mailbox.all_finished()

        def _loop(self) -> None:
            super()._loop()
            # Frames are done; the events are not until the broker acknowledged them all.
            while self._undelivered() and time.perf_counter() - self.last < 60:
                time.sleep(0.005)
            self.delivered, self.cpu_delivered = time.perf_counter(), time.process_time()
            self.threads, self.switches = thread_stats()
            self.rss_map = rss_by_mapping()

        def _undelivered(self) -> bool:
            handoff = getattr(self, "handoff", None)  # None also in a daemon without the delivery thread
            handed = handoff.pending if handoff is not None else 0
            return self.mqtt is not None and bool(handed or len(self.mqtt.outbox))

        def report_stats(self):  # type: ignore[no-untyped-def]
            self.final = super().report_stats()
            return self.final

    return TimedDaemon(config, gpio_factory="mock")


def run_daemon(folder: Path, model: str, threads: int, mqtt_port: int | None, state: Path, *,
               status: str = "off") -> dict[str, object]:
    from rpi_agent.cli import configure_logging

    configure_logging(0, False)  # what `faceagent run` logs, to stderr (the parent reads it, like journald)
    clock = StageClock().install()
    daemon = timed_daemon(bench_config(folder, model, threads, mqtt_port, state, status=status),
                          watch=status == "watched", clock=clock)
    started = time.perf_counter()
    daemon.run()
    final, frames = daemon.final, int(daemon.final.get("frames_total", 0))
    cameras = final.get("cameras", {})
    return {
        "fps": round((frames - 1) / (daemon.delivered - daemon.first), 2) if frames > 1 else 0.0,
        "frame_loop_fps": round((frames - 1) / (daemon.last - daemon.first), 2) if frames > 1 else 0.0,
        "frames": frames, "events": final.get("events_total"),
        "cpu_ms_per_frame": round((daemon.cpu_delivered - daemon.cpu_first) / max(1, frames - 1) * 1e3, 3),
        "cpu_s_by_thread": daemon.threads, "context_switches_by_thread": daemon.switches,
        "main_thread_cpu_ms_per_frame": round((daemon.main_last - daemon.main_first) / max(1, frames - 1) * 1e3, 3),
        "reader_cpu_ms_per_frame": round(sum(daemon.reader_cpu.values()) / max(1, frames) * 1e3, 3),
        "ms": cameras.get("bench", {}).get("ms", {}) if isinstance(cameras, dict) else {},
        "stage_clock": clock.report(),
        "delivery_lag_s": round(daemon.delivered - daemon.last, 3),
        "startup_and_shutdown_s": round(time.perf_counter() - started - (daemon.delivered - daemon.first), 2),
        "mqtt": {k: final.get(k) for k in ("outbox_waiting", "outbox_dropped", "snapshots_dropped")}
        if mqtt_port else "disabled (mosquitto not installed)",
        "peak_rss_mb": peak_rss_mb(), "rss_by_mapping_mb": daemon.rss_map,
        "status_page": status, "page_views": daemon.views[0],
    }


def worker(args: argparse.Namespace) -> None:
    folder = Path(args.folder)
    if args.worker == "daemon":
        result = run_daemon(folder, args.model, args.threads, args.mqtt_port, Path(args.state),
                            status=args.status_mode)
    else:
        result = run_bare(folder, args.model, args.threads, pipelined=args.worker == "bare")
    print(json.dumps(result))


def spawn(kind: str, args: argparse.Namespace, folder: Path, extra: list[str]) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", kind, "--folder", str(folder), "--model", args.model,
               "--threads", str(args.threads), *extra]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"bench_daemon: {kind} worker failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if kind == "daemon":
        result["log_lines"] = len(proc.stderr.splitlines())
    return result


def round_order(index: int, *, status: bool) -> list[str]:
    """The runs of round ``index``: who goes first alternates (and rotates, for the status page modes),
    so a load change within a round hits each alike."""
    order = ["bare", "daemon"] if index % 2 == 0 else ["daemon", "bare"]
    order.append("bare_sequential")
    if status:
        shift = index % len(STATUS_MODES)
        order += [f"status_{mode}" for mode in STATUS_MODES[shift:] + STATUS_MODES[:shift]]
    return order


def floor_report(floors: list[dict[str, float]], *, bare: dict[str, Any], daemon: list[dict[str, Any]],
                 fps_ratio: float) -> dict[str, Any]:
    """The floor's medians, the events a frame, and the highest daemon / bare ratio the floor leaves."""
    if not floors:
        return {"mqtt_floor": "not measured (mosquitto not installed)"}
    client = statistics.median(f["client_cpu_us"] for f in floors)
    broker = statistics.median(f["broker_cpu_us"] for f in floors)
    events = statistics.median((r["events"] or 0) / max(1, r["frames"]) for r in daemon)
    top = ceiling(bare["cpu_ms_per_frame"], events, client + broker)
    bare_cores = round(bare["cpu_ms_per_frame"] * bare["fps"] / 1e3, 2)
    return {"mqtt_floor": {"client_cpu_us": round(client, 1), "broker_cpu_us": round(broker, 1),
                           "payload_bytes": PAYLOAD_BYTES, "protocol": "5"},
            "events_per_frame": round(events, 2), "bare_cores_busy": bare_cores,
            "daemon_vs_bare_ceiling": top,
            "daemon_vs_ceiling": round(fps_ratio / top, 3) if top else None}


def run_rounds(args: argparse.Namespace, tmpdir: Path, folder: Path) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in round_order(0, status=args.status)}
    runs["mqtt_floor"] = []
    broker = start_mosquitto(tmpdir)
    try:
        for index in range(args.rounds):
            for kind in round_order(index, status=args.status):
                state = tmpdir / f"state-{index}-{kind}"  # a fresh outbox each run
                extra = ["--state", str(state)] + (["--mqtt-port", str(broker[1])] if broker else [])
                if kind.startswith("status_"):
                    extra += ["--status-mode", kind.removeprefix("status_")]
                worker = "daemon" if kind.startswith(("daemon", "status_")) else kind
                before = process_cpu_s(broker[0].pid) if broker else None
                result = spawn(worker, args, folder, extra if worker == "daemon" else [])
                after = process_cpu_s(broker[0].pid) if broker else None
                if worker == "daemon" and before is not None and after is not None:
                    # The broker shares the cores: part of what the daemon costs here, not the bare loop.
                    result["broker_cpu_ms_per_frame"] = round((after - before) / max(1, result["frames"]) * 1e3, 3)
                runs[kind].append(result)
            if broker:
                # paho-mqtt and the broker alone (MQTT 5, as the daemon), in this otherwise idle process.
                runs["mqtt_floor"].append(one_round(broker[1], broker[0].pid, "5", messages=args.floor_messages,
                                                    payload_bytes=PAYLOAD_BYTES, window=WINDOW))
    finally:
        if broker:
            broker[0].terminate()
            broker[0].wait(10)
    return runs


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"fps": statistics.median(r["fps"] for r in runs), "fps_rounds": [r["fps"] for r in runs],
            "cpu_ms_per_frame": statistics.median(r["cpu_ms_per_frame"] for r in runs),
            "main_thread_cpu_ms_per_frame": statistics.median(r["main_thread_cpu_ms_per_frame"] for r in runs),
            "reader_cpu_ms_per_frame": statistics.median(r["reader_cpu_ms_per_frame"] or 0.0 for r in runs),
            "broker_cpu_ms_per_frame": statistics.median(r.get("broker_cpu_ms_per_frame", 0.0) for r in runs),
            "stage_wait_us_per_frame": statistics.median(r["stage_clock"]["wait_us"] for r in runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "last_round": runs[-1]}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="RFB-320", help="built variant or .tflite path (default RFB-320)")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1, as the daemon)")
    parser.add_argument("--size", default="640x480", help="frame size WxH (camera-like; default 640x480)")
    parser.add_argument("--repeat", type=int, default=2, help="passes over the photos (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/daemon rounds (default 3)")
    parser.add_argument("--photos", help="only these photos, e.g. 5,13,22 (few faces, like a door camera)")
    parser.add_argument("--floor-messages", type=int, default=3000,
                        help="messages of the MQTT floor measured each round (default 3000)")
    parser.add_argument("--status", action="store_true",
                        help="also run the daemon with the status page off / on, unwatched / on, watched")
    parser.add_argument("--worker", choices=("bare", "bare_sequential", "daemon"), help=argparse.SUPPRESS)
    parser.add_argument("--status-mode", choices=STATUS_MODES, default="off", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--mqtt-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size: expected WxH such as 640x480, got {args.size!r}")
    if args.rounds < 1 or args.repeat < 1 or args.floor_messages < 1:
        parser.error("--rounds, --repeat and --floor-messages must be at least 1")
    with tempfile.TemporaryDirectory(prefix="faceagent-bench-") as tmp:
        tmpdir = Path(tmp)
        folder = tmpdir / "frames"
        folder.mkdir()
        frames = make_frames(folder, width=width, height=height, repeat=args.repeat,
                             only=args.photos.split(",") if args.photos else None)
        load_before = os.getloadavg()[0]
        runs = run_rounds(args, tmpdir, folder)
    bare, daemon, sequential = summary(runs["bare"]), summary(runs["daemon"]), summary(runs["bare_sequential"])
    ratio = round(daemon["fps"] / bare["fps"], 3)
    report = {
        "model": args.model, "threads": args.threads, "frame_size": f"{width}x{height}", "frames": frames,
        "photos": args.photos or "all", "rounds": args.rounds,
        "bare_decode_and_detect": bare, "daemon_end_to_end": daemon,
        "bare_sequential": sequential,
        "daemon_vs_bare_fps": ratio,
        "daemon_vs_sequential_fps": round(daemon["fps"] / sequential["fps"], 3),
        "daemon_vs_bare_cpu_per_frame": round(daemon["cpu_ms_per_frame"] / bare["cpu_ms_per_frame"], 3),
        "round_ratios": [round(d["fps"] / b["fps"], 3) for b, d in zip(runs["bare"], runs["daemon"], strict=True)],
        **floor_report(runs["mqtt_floor"], bare=bare, daemon=runs["daemon"], fps_ratio=ratio),
        **({"status_page": status_report(runs)} if args.status else {}),
        "acceptance": {"fps_ratio_at_least_0.90": ratio >= TARGET_RATIO,
                       "daemon_peak_rss_at_most_80_mb": daemon["peak_rss_mb"] <= TARGET_RSS_MB},
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
    }
    report["accepted"] = all(report["acceptance"].values())  # type: ignore[attr-defined]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
