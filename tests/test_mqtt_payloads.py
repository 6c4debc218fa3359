"""Pure parts of the MQTT sink: topics, command checks, discovery payloads, delivery bookkeeping, secrets."""

from __future__ import annotations

import json

import pytest

from rpi_agent.credentials import Secret, read_secret, redact_text, redact_url
from rpi_agent.domain import FaceEvent, TrackedFace
from rpi_agent.sinks.commands import DetectCommand, PayloadError, UnlockCommand, check_command, parse_payload
from rpi_agent.sinks.delivery import Delivery
from rpi_agent.sinks.discovery import discovery_messages
from rpi_agent.sinks.topics import Topics, event_payload

TOPICS = Topics("faceagent")


@pytest.mark.parametrize(("topic", "expected"), [
    ("faceagent/door/detect/set", ("door", "detect")),
    ("faceagent/door/unlock/set", ("door", "unlock")),
    ("faceagent/door/detect/state", None),
    ("faceagent/door/set", None),
    ("faceagent//detect/set", None),
    ("other/door/detect/set", None),
    ("faceagent/a/b/detect/set", None),
])
def test_parse_command_topic(topic, expected):
    assert TOPICS.parse_command(topic) == expected


def test_multi_level_prefix():
    topics = Topics("site/hall")
    assert topics.faces("door") == "site/hall/door/faces"
    assert topics.parse_command("site/hall/door/detect/set") == ("door", "detect")


@pytest.mark.parametrize(("feature", "payload", "value"), [
    ("detect", b"ON", DetectCommand(on=True)), ("detect", b" off \n", DetectCommand(on=False)),
    ("unlock", b"press", UnlockCommand()), ("unlock", b"ON", UnlockCommand()), ("unlock", b"unlock", UnlockCommand()),
    ("unlock", b"2.50", UnlockCommand(2.5)), ("unlock", b"600", UnlockCommand(600.0)),
    ("unlock", b"0.1", UnlockCommand(0.1)), ("unlock", b" 10\r\n", UnlockCommand(10.0)),
])
def test_good_command_payloads(feature, payload, value):
    assert parse_payload(feature, payload) == value


@pytest.mark.parametrize(("feature", "payload", "message"), [
    ("detect", b"yes", "expected ON or OFF"), ("detect", b"\xff", "not UTF-8"), ("detect", b"", "expected ON"),
    ("unlock", b"0", "seconds must be"), ("unlock", b"-1", "plain decimal"), ("unlock", b"601", "seconds must"),
    ("unlock", b"nan", "plain decimal"), ("unlock", b"inf", "plain decimal"), ("unlock", b"open", "expected"),
    ("reboot", b"ON", "unknown feature"),
    # Python's float() syntax is not a duration: 1_0 would be 10 s, 1e-300 would be 0 s.
    ("unlock", b"1_0", "plain decimal"), ("unlock", b"1e-300", "plain decimal"), ("unlock", b"1e2", "plain decimal"),
    ("unlock", b"+5", "plain decimal"), ("unlock", b"5.", "plain decimal"), ("unlock", b".5", "plain decimal"),
    ("unlock", "\u0663".encode(), "plain decimal"), ("unlock", b"0.05", "seconds must be"),
    ("unlock", b"1.2345", "plain decimal"), ("unlock", b"0x10", "plain decimal"),
])
def test_bad_command_payloads(feature, payload, message):
    with pytest.raises(PayloadError, match=message):
        parse_payload(feature, payload)


def test_check_command_knows_cameras_and_remote_unlock():
    assert check_command("door", "unlock", b"PRESS", cameras=["door"], remote_unlock=["door"]) == UnlockCommand()
    with pytest.raises(PayloadError, match="unknown camera 'gate'"):
        check_command("gate", "detect", b"ON", cameras=["door"], remote_unlock=[])
    with pytest.raises(PayloadError, match="remote unlock is not enabled"):
        check_command("door", "unlock", b"PRESS", cameras=["door"], remote_unlock=[])


def test_discovery_topics_and_shared_fields():
    msgs = discovery_messages(TOPICS, cameras=["door", "gate", "yard"], node_id="pi1", sw_version="1.2.3",
                              discovery_prefix="ha", device_name="Hall Pi", unlock_cameras={"gate"},
                              relay_cameras={"door"})
    topics = [t for t, _ in msgs]
    # 5 entities per camera, plus a relay sensor on door and gate, plus the unlock button on gate.
    assert len(topics) == len(set(topics)) == 18
    assert "ha/button/pi1/gate_unlock/config" in topics and "ha/button/pi1/door_unlock/config" not in topics
    assert {t for t in topics if t.endswith("_relay/config")} == {
        "ha/binary_sensor/pi1/door_relay/config", "ha/binary_sensor/pi1/gate_relay/config"}
    unique_ids = {p["unique_id"] for _, p in msgs}
    assert len(unique_ids) == 18
    for topic, payload in msgs:
        component = topic.split("/")[1]
        assert payload["default_entity_id"] == f"{component}.{payload['unique_id']}"
        assert "object_id" not in payload  # deprecated in Home Assistant; the name gives the same id
        assert payload["origin"] == {"name": "faceagent", "sw_version": "1.2.3"}
        assert payload["device"] == {"identifiers": ["faceagent_pi1"], "name": "Hall Pi", "manufacturer": "faceagent",
                                     "model": "faceagent face detector", "sw_version": "1.2.3"}
        json.dumps(payload)


def test_discovery_templates_map_counts_and_availability():
    payloads = {t.split("/")[3]: p for t, p in discovery_messages(TOPICS, cameras=["door"], node_id="n",
                                                                  sw_version="1", relay_cameras=["door"])}
    payloads.update(binary_sensor=payloads["door_face_occupancy"], sensor=payloads["door_face_count"],
                    switch=payloads["door_detection"], image=payloads["door_face_snapshot"])
    assert payloads["binary_sensor"]["value_template"] == "{{ 'ON' if (value | int(0)) > 0 else 'OFF' }}"
    assert payloads["sensor"]["state_topic"] == payloads["binary_sensor"]["state_topic"] == "faceagent/door/faces"
    relay, source = payloads["door_relay"], payloads["door_source"]
    assert (relay["state_topic"], relay["payload_on"], relay["payload_off"], relay["device_class"]) == (
        "faceagent/door/relay/state", "UNLOCKED", "LOCKED", "lock")
    assert source["state_topic"] == "faceagent/door/source/state" and source["entity_category"] == "diagnostic"
    assert source["options"] == ["online", "retrying", "ended"] and source["value_template"] == "{{ value | lower }}"
    assert payloads["switch"]["command_topic"] == "faceagent/door/detect/set"
    assert payloads["switch"]["state_topic"] == "faceagent/door/detect/state"
    assert payloads["image"]["availability_template"] == "{{ 'online' if value == 'online' else 'offline' }}"


def test_delivery_window_draining_and_early_acks():
    d = Delivery(window=2)
    assert d.room() == 0  # offline
    d.connected()
    assert d.room() == 2
    assert d.sent(mid=1, seq=10) is False
    assert d.acked(2) is None  # an ack racing ahead of sent()
    assert d.sent(mid=2, seq=11) is True
    assert d.handed == 11 and d.inflight == 1 and d.room() == 1
    d.disconnected()
    d.connected()  # mid 1 is still with the client: it goes first
    assert d.room() == 0
    assert d.acked(1) == 10
    assert d.room() == 2
    d.reset()
    assert d.handed == 0 and d.inflight == 0


def test_secret_sources_in_order(tmp_path):
    (tmp_path / "mqtt-password").write_text("from-file\n")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path), "PW": "from-env"}
    assert read_secret(credential="mqtt-password", env_var="PW", inline="x", environ=env).reveal() == "x"
    assert read_secret(credential="mqtt-password", env_var="PW", environ=env).reveal() == "from-file"
    assert read_secret(credential="absent", env_var="PW", environ=env).reveal() == "from-env"
    assert read_secret(credential="absent", env_var="NOPE", environ=env) is None
    assert read_secret(credential="mqtt-password", environ={}) is None


def test_secret_never_shows_itself():
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret) + str(secret) + f"{secret}" + repr([secret])
    assert redact_url("mqtts://me:p%40ss@broker:8883") == "mqtts://me:***@broker:8883"
    assert redact_url("mqtt://broker:1883") == "mqtt://broker:1883"
    assert redact_text("login hunter2 failed", [secret]) == "login *** failed"


def test_event_payload_is_frigate_shaped_with_a_message_id():
    face = TrackedFace(id="1700000000.1-ab12", camera="door", box=(1.0, 2.0, 30.5, 40.25), score=0.91234,
                       top_score=0.95, area=1000.0, current_zones=("porch",), entered_zones=("porch",),
                       start_time=1700000000.1)
    first = json.loads(event_payload(FaceEvent("update", face, face)))
    second = json.loads(event_payload(FaceEvent("update", face, face)))
    assert set(first) == {"message_id", "type", "before", "after"}
    assert first["type"] == "update" and first["after"]["id"] == "1700000000.1-ab12"
    assert first["after"]["label"] == "face" and first["after"]["box"] == [1.0, 2.0, 30.5, 40.2]
    assert first["message_id"] != second["message_id"]


def test_unusable_credential_files_are_config_errors(tmp_path):
    from rpi_agent.errors import ConfigError

    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "huge").write_bytes(b"x" * 5000)
    with pytest.raises(ConfigError, match=r"^credential 'binary': .* is not UTF-8 text$"):
        read_secret(credential="binary", environ=env)
    with pytest.raises(ConfigError, match=r"^credential 'huge': .* larger than 4096 bytes$"):
        read_secret(credential="huge", environ=env)


def test_delivery_stops_waiting_for_lost_acknowledgements(caplog):
    now = [100.0]
    d = Delivery(window=5, drain_timeout=30.0, clock=lambda: now[0])
    d.connected()
    d.sent(mid=1, seq=7)
    d.sent(mid=2, seq=8)
    d.disconnected()
    d.connected()
    assert d.room() == 0  # waiting for the client to re-send seq 7 and 8
    now[0] += 31.0
    assert d.room() == 5  # gave up: 7 and 8 are handed over again from the outbox
    assert d.handed == 6 and d.inflight == 0
    assert any("sending them again" in r.getMessage() for r in caplog.records)


def test_event_payload_bytes_are_those_of_json_dumps():
    import dataclasses

    from broker_fixtures import face

    start = face("door", "1700000000.123456-abcdef", zones=('a"b', "é"))
    start = dataclasses.replace(start, landmarks=((1.4, 2.6),) * 5)
    moved = dataclasses.replace(start, box=(41.0, 30.5, 121.25, 130.0), score=0.95, top_score=0.95)
    ended = dataclasses.replace(moved, end_time=1.0e9 + 3)
    for event in (FaceEvent("new", start, start), FaceEvent("update", start, moved), FaceEvent("end", moved, ended),
                  FaceEvent("end", moved, ended)):  # the same faces again: their JSON comes from the cache
        sent = event_payload(event)
        body = json.loads(sent)
        expected = {"message_id": body["message_id"], "type": event.type, "before": event.before.to_dict(),
                    "after": event.after.to_dict()}
        assert sent == json.dumps(expected, separators=(",", ":")).encode()
