"""`scripts/bench_mqtt_floor.py` measures paho's and the broker's cost per QoS 1 message on a real Mosquitto."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from broker import mosquitto_binary

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_mqtt_floor.py"


def run_floor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          check=False)


def test_every_message_is_acknowledged_and_costed() -> None:
    if mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: apt-get install -y mosquitto")
    done = run_floor("--messages", "300", "--rounds", "1", "--bare-cpu-ms", "3.0", "--events-per-frame", "10")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["machine"]["cpu"] and report["messages"] == 300
    for protocol in ("mqtt_5", "mqtt_3.1.1"):
        entry = report[protocol]
        # The round ends only once the broker has acknowledged all 300, so both processes did work.
        assert entry["client_cpu_us"] > 0 and entry["broker_cpu_us"] >= 0 and entry["messages_per_s"] > 0
        per_message = entry["client_cpu_us"] + entry["broker_cpu_us"]
        assert entry["daemon_vs_bare_ceiling"] == pytest.approx(3.0 / (3.0 + 10 * per_message / 1e3), abs=2e-3)


def test_the_ceiling_needs_both_figures() -> None:
    done = run_floor("--bare-cpu-ms", "3.0")
    assert done.returncode == 2 and "go together" in done.stderr and "Traceback" not in done.stderr
