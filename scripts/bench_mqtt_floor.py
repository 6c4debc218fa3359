#!/usr/bin/env python3
"""What one face event costs in MQTT alone, before any of faceagent's own work; prints JSON.

The daemon publishes every face event at QoS 1 with paho-mqtt and removes it from its outbox when
the broker's PUBACK comes back. This measures the floor of that path: a bare paho client (MQTT 5
and 3.1.1, the daemon's protocols) on a throwaway local Mosquitto, publishing event-sized messages
from its own network thread as the daemon does (``loop()`` turns, at most ``--window`` in flight,
the daemon's outbox window), and nothing else: no outbox, no JSON, no tracker. Per message:

- ``client_cpu_us``: CPU of the client process (publish, the PUBACK's decoding, paho's bookkeeping);
- ``broker_cpu_us``: CPU of the Mosquitto process (read from ``/proc/<pid>/stat``), which runs on
  the same cores as the daemon on a Pi and here.

Modes alternate for ``--rounds`` rounds; the figures are medians. With ``--bare-cpu-ms`` (a bare
decode + detect loop's CPU per frame) and ``--events-per-frame`` (both from
``scripts/bench_daemon.py``'s JSON of the same machine), it also gives the highest daemon / bare
ratio that these two costs alone allow when every core is busy (fps then follows CPU per frame):
``bare / (bare + events x (client + broker))``.

Usage:
    .venv/bin/python scripts/bench_mqtt_floor.py [--messages 4000] [--rounds 5] [--payload-bytes 640]
                                                 [--bare-cpu-ms 2.9 --events-per-frame 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_broker import process_cpu_s, start_mosquitto

from rpi_agent.evaluation.machine import cpu_model

PROTOCOLS = ("5", "3.1.1")
PAYLOAD_BYTES = 640
"""About a new face event's JSON."""
WINDOW = 20
"""The outbox window, and Mosquitto's Receive Maximum."""


def publish_all(port: int, protocol: str, *, messages: int, payload: bytes, window: int) -> dict[str, float]:
    """Publish ``messages`` QoS 1 messages from the client's own loop; CPU and wall time until all are acked."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    v5 = protocol == "5"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"floor-{os.getpid()}",
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, clean_session=None if v5 else True)
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(window + 1000)
    acked = [0]
    client.on_publish = lambda *_args: acked.__setitem__(0, acked[0] + 1)
    client.connect("127.0.0.1", port, keepalive=60)
    while not client.is_connected():
        client.loop(timeout=0.05)
    sent = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    while acked[0] < messages:
        # As the daemon's pump: hand over what the window has room for, then one loop turn.
        while sent < messages and sent - acked[0] < window:
            client.publish("faceagent/floor/events", payload, qos=1)
            sent += 1
        client.loop(timeout=0.05)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    client.disconnect()
    client.loop(timeout=0.05)
    return {"wall_s": wall, "client_cpu_s": cpu}


def one_round(port: int, broker_pid: int, protocol: str, *, messages: int, payload_bytes: int,
              window: int) -> dict[str, float]:
    """The client's and the broker's CPU µs a message, and messages a second, over one publish_all."""
    before = process_cpu_s(broker_pid)
    result = publish_all(port, protocol, messages=messages, payload=b"x" * payload_bytes, window=window)
    after = process_cpu_s(broker_pid)
    if before is None or after is None:
        sys.exit("bench_mqtt_floor: the broker exited during the run")
    return {"client_cpu_us": result["client_cpu_s"] / messages * 1e6,
            "broker_cpu_us": (after - before) / messages * 1e6,
            "messages_per_s": messages / result["wall_s"]}


def ceiling(bare_cpu_ms: float, events: float, per_message_us: float) -> float:
    """Highest daemon / bare fps ratio when every core is busy and each event costs ``per_message_us`` more."""
    return round(bare_cpu_ms / (bare_cpu_ms + events * per_message_us / 1e3), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=4000, help="QoS 1 messages per round (default 4000)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per protocol (default 5)")
    parser.add_argument("--payload-bytes", type=int, default=PAYLOAD_BYTES,
                        help="message size (default 640, a new face event's JSON)")
    parser.add_argument("--window", type=int, default=WINDOW,
                        help="most messages in flight (default 20: the outbox window and Mosquitto's Receive Maximum)")
    parser.add_argument("--bare-cpu-ms", type=float, help="a bare decode + detect loop's CPU ms per frame")
    parser.add_argument("--events-per-frame", type=float, help="face events per frame of the daemon benchmark")
    args = parser.parse_args()
    if args.messages < 1 or args.rounds < 1 or args.window < 1 or args.payload_bytes < 0:
        parser.error("--messages, --rounds and --window must be at least 1, --payload-bytes at least 0")
    if (args.bare_cpu_ms is None) != (args.events_per_frame is None):
        parser.error("--bare-cpu-ms and --events-per-frame go together")
    with tempfile.TemporaryDirectory(prefix="faceagent-floor-") as tmp:
        broker = start_mosquitto(Path(tmp))
        if broker is None:
            sys.exit("bench_mqtt_floor: mosquitto is not installed (apt-get install mosquitto)")
        proc, port = broker
        try:
            samples: dict[str, list[dict[str, float]]] = {p: [] for p in PROTOCOLS}
            for _ in range(args.rounds):
                for protocol in PROTOCOLS:
                    samples[protocol].append(one_round(port, proc.pid, protocol, messages=args.messages,
                                                       payload_bytes=args.payload_bytes, window=args.window))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    report: dict[str, Any] = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                                          "python": sys.version.split()[0]},
                              "messages": args.messages, "rounds": args.rounds,
                              "payload_bytes": args.payload_bytes, "window": args.window}
    for protocol, rounds in samples.items():
        medians = {key: round(statistics.median(r[key] for r in rounds), 1) for key in rounds[0]}
        entry: dict[str, Any] = dict(medians)
        if args.bare_cpu_ms is not None:
            per_message = medians["client_cpu_us"] + medians["broker_cpu_us"]
            entry["daemon_vs_bare_ceiling"] = ceiling(args.bare_cpu_ms, args.events_per_frame, per_message)
        report[f"mqtt_{protocol}"] = entry
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
