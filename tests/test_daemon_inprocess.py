"""The daemon in this process, so gpiozero's mock pins can be read: MQTT commands, and fail-secure on a crash."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from broker_fixtures import WAIT
from daemon_support import CAMERA, SceneWriter, count_faces, lifecycles, received_events
from gpiozero import Device
from gpiozero.pins.mock import MockFactory
from paho.mqtt.enums import CallbackAPIVersion

from rpi_agent.config import parse_config
from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.imaging.files import load_rgb
from rpi_agent.runtime.daemon import Daemon
from rpi_agent.runtime.pipeline import Pipeline
from rpi_agent.sinks.commands import DetectCommand, UnlockCommand

RELAY, LED = 17, 27


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    """A fresh mock pin factory (the daemon's ``mock`` factory reuses it), restored afterwards."""
    previous = Device.pin_factory
    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    Device.pin_factory.reset()
    Device.pin_factory = previous


def pin_history(factory: MockFactory, number: int) -> list[bool]:
    return [s.state for s in factory.pin(number).states]


@pytest.fixture
def blank_folder(tmp_path):
    writer = SceneWriter(tmp_path / "blank")
    writer.blanks(300)
    return writer.folder


@pytest.fixture
def one_face_folder(tmp_path, faces_dir):
    writer = SceneWriter(tmp_path / "frames")
    writer.link(faces_dir / "5.jpg", 3)
    writer.blanks(300)
    return writer.folder


def config(folder, state, model, *, mqtt: dict | None = None, relay_seconds: float = 0.5, allow_unlock: bool = False):
    return parse_config({
        "detector": {"model": str(model)},
        "mqtt": mqtt or {"enabled": False},
        "cameras": [{
            "name": CAMERA, "source": str(folder), "fps": 20.0, "hold_frames": 1, "tracker": {"min_hits": 2},
            "gpio": {"relay_pin": RELAY, "led_pin": LED, "relay_seconds": relay_seconds, "dwell_seconds": 0.0,
                     "cooldown_seconds": 0.0, "allow_remote_unlock": allow_unlock},
        }],
        "paths": {"state_dir": str(state)},
        "logging": {"stats_interval": 0.0},
    })


def test_exception_in_the_pipeline_still_locks_the_relay(tmp_path, pins, one_face_folder, built_model, monkeypatch):
    cfg = config(one_face_folder, tmp_path / "state", built_model("RFB-320"), relay_seconds=60.0)
    daemon = Daemon(cfg, gpio_factory="mock")
    step = Pipeline.step

    def failing_step(self, frame):  # the relay is held open for 60 s when the bug strikes
        if daemon.gpio[CAMERA].relay_state == "UNLOCKED":
            raise RuntimeError("injected pipeline failure")
        return step(self, frame)

    monkeypatch.setattr(Pipeline, "step", failing_step)
    with pytest.raises(RuntimeError, match="injected pipeline failure"):
        daemon.run()
    relay = pin_history(pins, RELAY)
    assert relay[0] is False and True in relay and relay[-1] is False, relay
    assert pin_history(pins, LED)[-1] is False
    assert daemon.gpio[CAMERA].relay_state == "LOCKED"


def test_mqtt_commands_reach_pipeline_and_relay(tmp_path, pins, broker, recorder, blank_folder, built_model):  # noqa: PLR0917
    prefix = f"fc{uuid.uuid4().hex[:6]}"
    rec = recorder([f"{prefix}/#"])
    mqtt_cfg = {"host": broker.host, "port": broker.port, "topic_prefix": prefix, "client_id": f"cmd-{prefix}",
                "keepalive": 5, "reconnect_min": 0.2, "reconnect_max": 1.0, "password_credential": "",
                "password_env": "FACEAGENT_TEST_UNSET_PASSWORD", "home_assistant": {"enabled": False}}
    daemon = Daemon(config(blank_folder, tmp_path / "state", built_model("RFB-320"), mqtt=mqtt_cfg,
                           allow_unlock=True), gpio_factory="mock")
    relay_topic = f"{prefix}/{CAMERA}/relay/state"
    detect_topic = f"{prefix}/{CAMERA}/detect/state"
    outcome: dict[str, object] = {}

    def drive() -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ctl-{prefix}")
        client.connect(broker.host, broker.port)
        client.loop_start()
        try:
            outcome["online"] = rec.wait_for(lambda: b"online" in rec.payloads(f"{prefix}/available"), WAIT)
            client.publish(f"{prefix}/{CAMERA}/detect/set", "OFF", qos=1).wait_for_publish(WAIT)
            outcome["off"] = rec.wait_for(lambda: rec.payloads(detect_topic)[-1:] == [b"OFF"], WAIT)
            outcome["detect_flag"] = daemon.pipelines[CAMERA].detect
            client.publish(f"{prefix}/{CAMERA}/detect/set", "on", qos=1).wait_for_publish(WAIT)
            outcome["on"] = rec.wait_for(lambda: rec.payloads(detect_topic)[-1:] == [b"ON"], WAIT)
            before = len(rec.payloads(relay_topic))
            client.publish(f"{prefix}/{CAMERA}/unlock/set", "0.3", qos=1).wait_for_publish(WAIT)
            outcome["pulsed"] = rec.wait_for(
                lambda: rec.payloads(relay_topic)[before:] == [b"UNLOCKED", b"LOCKED"], WAIT)
        finally:
            client.loop_stop()
            client.disconnect()
            daemon.stop_event.set()

    driver = threading.Thread(target=drive)
    driver.start()
    try:
        assert daemon.run() == 0
    finally:
        daemon.stop_event.set()
        driver.join(WAIT * 5)
    assert outcome == {"online": True, "off": True, "detect_flag": False, "on": True, "pulsed": True}
    relay = pin_history(pins, RELAY)
    assert relay == [False, True, False], relay  # no face in the frames: only the remote pulse
    assert rec.payloads(relay_topic)[0] == b"LOCKED" and rec.payloads(relay_topic)[-1] == b"LOCKED"
    assert rec.wait_for(lambda: rec.payloads(f"{prefix}/available")[-1:] == [b"stopped"], WAIT)


def test_remote_unlock_refused_unless_enabled(tmp_path, pins, one_face_folder, built_model):
    daemon = Daemon(config(one_face_folder, tmp_path / "state", built_model("RFB-320")), gpio_factory="mock")
    daemon._build_gpio()
    try:
        assert daemon.commands(CAMERA, "unlock", UnlockCommand()) is None
        assert daemon.commands("garage", "detect", DetectCommand(on=True)) is None
        daemon.commands.run_pending()  # nothing was queued: the relay stays as it was
    finally:
        daemon.gpio[CAMERA].close()
    assert pin_history(pins, RELAY) == [False]


def test_two_cameras_keep_their_own_events_and_relays(tmp_path, pins, broker, recorder, faces_dir, built_model):  # noqa: PLR0917
    detector = FaceDetector.from_model(built_model("RFB-320"))
    cameras, expected = [], {}
    for name, photo, relay in (("door", "2.jpg", RELAY), ("hall", "5.jpg", 22)):
        writer = SceneWriter(tmp_path / name)
        writer.link(faces_dir / photo, 2)
        writer.blanks(2)
        expected[name] = count_faces(detector, load_rgb(faces_dir / photo))
        cameras.append({"name": name, "source": str(writer.folder), "fps": 10.0, "hold_frames": 1,
                        "tracker": {"min_hits": 2, "max_age_frames": 2, "max_age_seconds": 0.0},
                        "gpio": {"relay_pin": relay, "relay_seconds": 0.2, "dwell_seconds": 0.0}})
    prefix = f"f2{uuid.uuid4().hex[:6]}"
    rec = recorder([f"{prefix}/#"])
    cfg = parse_config({
        "detector": {"model": str(built_model("RFB-320"))},
        "mqtt": {"host": broker.host, "port": broker.port, "topic_prefix": prefix, "client_id": f"two-{prefix}",
                 "reconnect_min": 0.2, "reconnect_max": 1.0, "password_credential": "",
                 "password_env": "FACEAGENT_TEST_UNSET_PASSWORD", "home_assistant": {"enabled": False}},
        "cameras": cameras, "paths": {"state_dir": str(tmp_path / "state")}, "logging": {"stats_interval": 0.0},
    })
    assert Daemon(cfg, gpio_factory="mock").run() == 0  # both folders end, so the daemon stops by itself
    assert rec.wait_for(lambda: rec.payloads(f"{prefix}/available")[-1:] == [b"stopped"], WAIT)
    events = received_events(rec, prefix)
    for name in ("door", "hall"):
        mine = [e for e in events if e["after"]["camera"] == name]
        per_id = lifecycles(mine, camera=name)
        assert len(per_id) == expected[name], (name, expected[name], len(per_id))
        assert all(types[0] == "new" and types[-1] == "end" for types in per_id.values()), per_id
        relay = [s.state for s in pins.pin(RELAY if name == "door" else 22).states]
        assert relay[0] is False and True in relay and relay[-1] is False, (name, relay)
        assert rec.payloads(f"{prefix}/{name}/relay/state")[-1] == b"LOCKED"
