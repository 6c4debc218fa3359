"""`scripts/bench_daemon.py` runs the real daemon beside a bare loop and the MQTT floor on one real Mosquitto."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from broker import mosquitto_binary

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_daemon.py"


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
                          check=False)


def test_the_daemon_is_measured_against_bare_and_the_floor(built_model, shared: Path) -> None:
    built_model("RFB-320")
    if mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: apt-get install -y mosquitto")
    done = run_bench("--photos", "5,13", "--repeat", "1", "--rounds", "1", "--floor-messages", "300")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    bare, daemon = report["bare_decode_and_detect"], report["daemon_end_to_end"]
    assert report["frames"] == 6 and bare["last_round"]["frames"] == 6 and daemon["last_round"]["frames"] == 6
    events = daemon["last_round"]["events"]
    assert events > 0 and daemon["last_round"]["mqtt"]["outbox_dropped"] == 0
    assert report["events_per_frame"] == pytest.approx(events / 6, abs=0.01)
    assert report["daemon_vs_bare_fps"] == pytest.approx(daemon["fps"] / bare["fps"], abs=1e-3)
    floor = report["mqtt_floor"]
    per_message = floor["client_cpu_us"] + floor["broker_cpu_us"]
    assert floor["client_cpu_us"] > 0 and floor["protocol"] == "5"
    expected = bare["cpu_ms_per_frame"] / (bare["cpu_ms_per_frame"] + events / 6 * per_message / 1e3)
    assert report["daemon_vs_bare_ceiling"] == pytest.approx(expected, abs=2e-3)
    assert report["daemon_vs_ceiling"] == pytest.approx(report["daemon_vs_bare_fps"] / report["daemon_vs_bare_ceiling"],
                                                        abs=2e-3)
    assert report["bare_cores_busy"] == pytest.approx(bare["cpu_ms_per_frame"] * bare["fps"] / 1e3, abs=0.01)
    for side, stages in ((bare, {"preprocess", "inference", "decode"}), (daemon, {"preprocess", "inference", "decode",
                                                                                  "track"})):
        clock = side["last_round"]["stage_clock"]
        assert set(clock["stages"]) == stages and all(s["wall_us"] > 0 for s in clock["stages"].values())
        waited = sum(s["wall_us"] - s["cpu_us"] for s in clock["stages"].values())
        assert clock["wait_us"] == pytest.approx(waited, abs=0.5) == side["stage_wait_us_per_frame"]
    assert set(report["acceptance"]) == {"fps_ratio_at_least_0.90", "daemon_peak_rss_at_most_80_mb"}
    assert report["machine"]["cpu"]


def test_bad_arguments_get_one_line() -> None:
    done = run_bench("--floor-messages", "0")
    assert done.returncode == 2 and "--floor-messages" in done.stderr and "Traceback" not in done.stderr
