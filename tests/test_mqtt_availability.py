"""Availability (online/stopped/offline Last Will) and Home Assistant discovery on a real Mosquitto."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from broker_fixtures import WAIT, sink_config, wait_until

from rpi_agent.config.mqtt import HomeAssistantConfig

AVAILABLE = "faceagent/available"

CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from rpi_agent.config.mqtt import HomeAssistantConfig, MqttConfig
    from rpi_agent.sinks.mqtt import MqttSink
    cfg = MqttConfig(host="127.0.0.1", port=int(sys.argv[1]), client_id="child-sink", keepalive=60,
                     password_env="", password_credential="", home_assistant=HomeAssistantConfig(enabled=False))
    sink = MqttSink(cfg, cameras=["door"], outbox_dir=Path(sys.argv[2]), on_command=lambda *a: None,
                    sw_version="test")
    sink.start()
    if not sink.wait_connected(20):
        sys.exit(3)
    print("connected", flush=True)
    time.sleep(120)
""")


def test_online_then_stopped_on_clean_close(broker, recorder, make_sink):
    rec = recorder([AVAILABLE])
    sink = make_sink(sink_config(broker))
    assert rec.wait_for(lambda: rec.payloads(AVAILABLE)[-1:] == [b"online"])
    sink.close()
    assert rec.wait_for(lambda: rec.payloads(AVAILABLE)[-1:] == [b"stopped"])
    late = recorder([AVAILABLE])
    assert late.wait_for(lambda: late.payloads(AVAILABLE) == [b"stopped"])
    assert late.on(AVAILABLE)[0].retain


def test_last_will_says_offline_when_the_process_is_killed(broker, recorder, tmp_path: Path):
    rec = recorder([AVAILABLE])
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(broker.port), str(tmp_path / "child")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == b"connected", child.stderr.read() if child.stderr else b""
        assert rec.wait_for(lambda: rec.payloads(AVAILABLE)[-1:] == [b"online"])
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=WAIT)
        assert rec.wait_for(lambda: rec.payloads(AVAILABLE)[-1:] == [b"offline"])
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=WAIT)
        for stream in (child.stdout, child.stderr):
            if stream:
                stream.close()


def test_online_again_after_a_broker_restart(broker, recorder, make_sink):
    sink = make_sink(sink_config(broker))
    assert sink.wait_connected(WAIT)
    broker.restart()
    assert wait_until(lambda: sink.connected and sink.stats()["connections"] >= 2, WAIT)
    late = recorder([AVAILABLE])
    assert late.wait_for(lambda: late.payloads(AVAILABLE) == [b"online"])


def _configs(rec) -> dict[str, dict]:
    return {m.topic: json.loads(m.payload) for m in rec.messages if m.topic.endswith("/config")}


def test_home_assistant_discovery_and_reannouncement(broker, recorder, make_sink):
    rec = recorder(["homeassistant/#"])
    ha = HomeAssistantConfig(enabled=True, node_id="hall")
    make_sink(sink_config(broker, home_assistant=ha), remote_unlock={"door"})
    # Remote unlock implies a relay: 5 entities, the relay's lock sensor and the unlock button.
    assert rec.wait_for(lambda: len(_configs(rec)) == 7)
    configs = _configs(rec)
    occupancy = configs["homeassistant/binary_sensor/hall/door_face_occupancy/config"]
    count = configs["homeassistant/sensor/hall/door_face_count/config"]
    image = configs["homeassistant/image/hall/door_face_snapshot/config"]
    assert occupancy["device_class"] == "occupancy" and occupancy["state_topic"] == "faceagent/door/faces"
    assert count["state_class"] == "measurement"
    assert image["image_topic"] == "faceagent/door/face/snapshot" and image["content_type"] == "image/jpeg"
    for payload in configs.values():
        assert payload["availability_topic"] == AVAILABLE
        assert payload["unique_id"].startswith("hall_")
        assert payload["default_entity_id"].split(".", 1)[1] == payload["unique_id"]
        assert "object_id" not in payload
        assert payload["device"]["identifiers"] == ["faceagent_hall"]
        assert payload["device"]["sw_version"] == "0.0-test"
    assert "homeassistant/button/hall/door_unlock/config" in configs
    before = len(rec.messages)
    rec.client.publish("homeassistant/status", "online", qos=1)
    assert rec.wait_for(lambda: len(rec.messages) >= before + 7)
    assert sum(m.topic == "homeassistant/sensor/hall/door_face_count/config" for m in rec.messages) == 2


def test_no_unlock_button_unless_enabled(broker, recorder, make_sink):
    rec = recorder(["homeassistant/#", "faceagent/door/detect/state"])
    sink = make_sink(sink_config(broker, home_assistant=HomeAssistantConfig(enabled=True, node_id="porch")))
    assert sink.wait_connected(WAIT)
    sink.publish_state("door", "detect", "ON")  # sent after the discovery burst: a sentinel
    assert rec.wait_for(lambda: rec.payloads("faceagent/door/detect/state") == [b"ON"])
    assert len(_configs(rec)) == 5
    assert not any("unlock" in topic or "relay" in topic for topic in _configs(rec))
