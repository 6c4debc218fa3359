"""Home Assistant itself reads what faceagent announces: a real core, a real Mosquitto, `faceagent run`.

The core (tests/ha_support.py) creates the entities from our discovery messages; everything is checked
through its REST API: which entities exist and on which device, that their states follow the detections
and the relay, that they go unavailable when faceagent stops (cleanly, and by SIGKILL through the Last
Will), that they come back after the core restarts, and that the core's log has no complaint about our
payloads.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker import Broker, wait_until
from broker_fixtures import Recorder
from daemon_support import DaemonProcess, SceneWriter, count_faces
from ha_support import HomeAssistant

from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.imaging.files import load_rgb
from rpi_agent.sinks.discovery import discovery_messages
from rpi_agent.sinks.topics import Topics

NODE = "hall"
PREFIX = "faceagent"
WAIT = 60.0
HELD = 3000  # frames of the second photo: the daemon is still showing it when the test ends
ENTITIES = {
    "binary_sensor.hall_door_face_occupancy": "Hall door face occupancy",
    "sensor.hall_door_face_count": "Hall door face count",
    "image.hall_door_face_snapshot": "Hall door face snapshot",
    "switch.hall_door_detection": "Hall door detection",
    "sensor.hall_door_source": "Hall door source",
    "binary_sensor.hall_door_relay": "Hall door relay",
    "button.hall_door_unlock": "Hall door unlock",
}
OCCUPANCY, COUNT, IMAGE = "binary_sensor.hall_door_face_occupancy", "sensor.hall_door_face_count", \
    "image.hall_door_face_snapshot"
timings: dict[str, float] = {}


@pytest.fixture(scope="module")
def ha_broker(tmp_path_factory: pytest.TempPathFactory, broker_certs) -> Iterator[Broker]:
    instance = Broker(tmp_path_factory.mktemp("ha-broker"), certs=broker_certs)
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory, ha_broker: Broker) -> Iterator[HomeAssistant]:
    began = time.monotonic()
    instance = HomeAssistant(tmp_path_factory.mktemp("ha") / "config", broker_port=ha_broker.port)
    timings["core_venv_s"] = time.monotonic() - began
    try:
        timings["core_first_start_s"] = instance.start()
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path, built_model) -> tuple[Path, int, int]:
    """Photo A for 60 frames, 40 blanks, photo B held: ``(folder, faces in A, faces in B)``.

    At 10 fps photo A lasts 6 s: time enough for the core to create the entities and show it.
    """
    detector = FaceDetector.from_model(built_model("RFB-320"))
    photos = sorted(faces_dir.glob("*.jpg"), key=lambda p: int(p.stem))
    counted = [(p, count_faces(detector, load_rgb(p))) for p in photos]
    small = [(p, n) for p, n in counted if 1 <= n <= 4]
    first = small[0]
    second = next((p, n) for p, n in small if n != first[1])
    writer = SceneWriter(tmp_path_factory.mktemp("ha-scenes") / "frames")
    writer.link(first[0], 60)
    writer.blanks(40)
    writer.link(second[0], HELD)
    return writer.folder, first[1], second[1]


def write_config(path: Path, *, port: int, folder: Path, state: Path, model: Path) -> Path:
    path.write_text(f"""
[detector]
model = "{model}"
[mqtt]
host = "127.0.0.1"
port = {port}
topic_prefix = "{PREFIX}"
client_id = "faceagent-ha-test"
keepalive = 5
reconnect_min = 0.2
reconnect_max = 1.0
password_env = "FACEAGENT_TEST_UNSET_PASSWORD"
password_credential = ""
[mqtt.home_assistant]
node_id = "{NODE}"
device_name = "Hall"
[[cameras]]
name = "door"
source = "{folder}"
fps = 10
hold_frames = 1
[cameras.filters]
min_score = 0.7
[cameras.tracker]
min_hits = 2
max_age_frames = 3
max_age_seconds = 0
[cameras.gpio]
relay_pin = 17
relay_seconds = 0.6
dwell_seconds = 0
cooldown_seconds = 600
allow_remote_unlock = true
[paths]
state_dir = "{state}"
[logging]
stats_interval = 0
""")
    return path


def retained(rec: Recorder, topic: str) -> bytes | None:
    payloads = rec.payloads(topic)
    return payloads[-1] if payloads else None


def wait_state(core: HomeAssistant, entity: str, want: str, timeout: float = WAIT) -> bool:
    return wait_until(lambda: core.state(entity) == want, timeout, interval=0.1)


def check_entities(core: HomeAssistant) -> None:
    """Every entity is there, on one device named Hall, with the names and classes HA users expect."""
    assert wait_until(lambda: set(core.template_list("{{ integration_entities('mqtt') }}")) == set(ENTITIES),
                      WAIT, interval=0.2), (core.template_list("{{ integration_entities('mqtt') }}"),
                                            core.discovery_problems())
    device = core.template(f"{{{{ device_id('{OCCUPANCY}') }}}}").strip()
    assert device and device != "None"
    assert set(core.template_list(f"{{{{ device_entities('{device}') }}}}")) == set(ENTITIES)
    assert core.template(f"{{{{ device_attr('{device}', 'name') }}}}").strip() == "Hall"
    assert core.template(f"{{{{ device_attr('{device}', 'manufacturer') }}}}").strip() == "faceagent"
    for entity, name in ENTITIES.items():
        assert core.attributes(entity).get("friendly_name") == name, (entity, core.attributes(entity))
    assert core.attributes(OCCUPANCY)["device_class"] == "occupancy"
    assert core.attributes("binary_sensor.hall_door_relay")["device_class"] == "lock"
    assert core.attributes(COUNT)["state_class"] == "measurement"
    assert core.attributes("sensor.hall_door_source")["options"] == ["online", "retrying", "ended"]


def check_follows(core: HomeAssistant, rec: Recorder, faces_a: int, faces_b: int) -> None:
    """Occupancy and count follow photo A, the blanks and photo B; the image is the published JPEG."""
    faces_topic = f"{PREFIX}/door/faces"
    assert wait_state(core, OCCUPANCY, "on"), core.state(OCCUPANCY)
    assert wait_state(core, COUNT, str(faces_a)), (core.state(COUNT), faces_a)
    assert retained(rec, faces_topic) == str(faces_a).encode()
    assert wait_state(core, OCCUPANCY, "off"), core.state(OCCUPANCY)
    assert core.state(COUNT) == "0" == (retained(rec, faces_topic) or b"").decode()
    assert wait_state(core, OCCUPANCY, "on") and wait_state(core, COUNT, str(faces_b))
    assert retained(rec, faces_topic) == str(faces_b).encode()
    assert core.state("sensor.hall_door_source") == "online"
    assert core.state("switch.hall_door_detection") == "on"
    check_image(core, rec)


def check_image(core: HomeAssistant, rec: Recorder) -> None:
    snapshot_topic = f"{PREFIX}/door/face/snapshot"
    assert rec.wait_for(lambda: retained(rec, snapshot_topic) is not None, WAIT)

    def same() -> bool:
        status, body = core.get_bytes(f"/api/image_proxy/{IMAGE}")
        return status == 200 and body == retained(rec, snapshot_topic)

    assert wait_until(same, WAIT, interval=0.2), core.get_bytes(f"/api/image_proxy/{IMAGE}")[0]
    assert core.get_bytes(f"/api/image_proxy/{IMAGE}")[1][:2] == b"\xff\xd8"


def check_unlock_button(core: HomeAssistant, rec: Recorder) -> None:
    """Pressing the button in HA pulses the relay: the lock sensor shows unlocked (on), then locked."""
    relay_topic = f"{PREFIX}/door/relay/state"
    before = len(rec.payloads(relay_topic))
    assert core.state("binary_sensor.hall_door_relay") == "off"
    core.post("/api/services/button/press", {"entity_id": "button.hall_door_unlock"})
    assert rec.wait_for(lambda: b"UNLOCKED" in rec.payloads(relay_topic)[before:], WAIT)
    assert rec.wait_for(lambda: rec.payloads(relay_topic)[-1] == b"LOCKED", WAIT)
    assert wait_state(core, "binary_sensor.hall_door_relay", "off")


def test_announced_entity_ids_are_the_ones_this_core_creates():
    """The core here (2025.4) ignores default_entity_id and names entities from device + entity name:
    both rules must give the ids the live test finds."""
    messages = discovery_messages(Topics(PREFIX), cameras=["door"], node_id=NODE, sw_version="x",
                                  device_name="Hall", unlock_cameras=["door"])
    assert {payload["default_entity_id"] for _, payload in messages} == set(ENTITIES)
    for _, payload in messages:
        component = str(payload["default_entity_id"]).split(".")[0]
        derived = f"{component}.{NODE}_" + str(payload["name"]).replace(" ", "_")
        assert derived == payload["default_entity_id"]


def all_unavailable(core: HomeAssistant) -> bool:
    return all(core.state(entity) == "unavailable" for entity in ENTITIES)


def test_home_assistant_sees_faceagent(tmp_path, core, ha_broker, scenes, built_model):
    folder, faces_a, faces_b = scenes
    rec = Recorder(ha_broker, [f"{PREFIX}/#"])
    config = write_config(tmp_path / "config.toml", port=ha_broker.port, folder=folder, state=tmp_path / "state",
                          model=built_model("RFB-320"))
    began = time.monotonic()
    daemon = DaemonProcess(config)
    try:
        check_entities(core)
        check_follows(core, rec, faces_a, faces_b)
        check_unlock_button(core, rec)

        # The core restarts: faceagent hears "online" on homeassistant/status and announces again.
        announced = rec.payloads("homeassistant/status")
        timings["core_restart_s"] = core.restart()
        assert daemon.wait_log(lambda d: sum("announcing entities again" in x for x in d.lines) >= 1, WAIT), \
            (announced, daemon.log())
        check_entities(core)
        assert wait_state(core, OCCUPANCY, "on") and wait_state(core, COUNT, str(faces_b))
        check_image(core, rec)

        assert daemon.stop(signal.SIGTERM) == 0, daemon.log()
        assert wait_until(lambda: all_unavailable(core), WAIT, interval=0.2), \
            {e: core.state(e) for e in ENTITIES}
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert "Traceback" not in daemon.log()

    # Killed without a goodbye: the broker publishes the Last Will and the core marks everything unavailable.
    killed = DaemonProcess(config)
    try:
        assert wait_state(core, OCCUPANCY, "on"), killed.log()
        killed.stop(signal.SIGKILL)
        assert wait_until(lambda: all_unavailable(core), WAIT, interval=0.2), \
            {e: core.state(e) for e in ENTITIES}
    finally:
        if killed.proc.poll() is None:
            killed.proc.kill()
    rec.close()
    timings["faceagent_scenario_s"] = time.monotonic() - began

    problems = core.discovery_problems()
    assert not problems, "\n".join(problems)
    print(f"\nHome Assistant test timings (s): { {k: round(v, 1) for k, v in timings.items()} }")
