"""Property tests (Hypothesis) for what a publisher or a config file can put in front of the MQTT sink.

Command payloads and topics are refused with one line or accepted as exactly what they say;
topic and host checks never raise anything but their documented refusal.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpi_agent.config.mqtt import MAX_TOPIC_BYTES, MqttConfig, topic_problem
from rpi_agent.sinks.commands import (
    MAX_UNLOCK_SECONDS,
    MIN_UNLOCK_SECONDS,
    Command,
    CommandRouter,
    DetectCommand,
    PayloadError,
    UnlockCommand,
    parse_payload,
)
from rpi_agent.sinks.topics import Topics

PLAIN = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3})?")
FEATURES = st.sampled_from(["detect", "unlock"]) | st.text(max_size=20)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Payloads that look like numbers in every syntax Python's float() or a careless parser would take.
NUMBERISH = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.from_regex(r"[ +\-]?[0-9_]{0,5}(\.[0-9_]{0,5})?([eE][+\-]?[0-9]{1,4})?\s?", fullmatch=True),
    st.sampled_from(["on", "PRESS", "Unlock", " off ", "0x10", "1_0", "1e-300", "\u0663", "\uff11", "½"]),
)


@SETTINGS
@given(feature=FEATURES, payload=st.binary(max_size=64) | NUMBERISH.map(str.encode))
def test_a_payload_is_refused_in_one_line_or_means_exactly_what_it_says(feature, payload):
    try:
        command = parse_payload(feature, payload)
    except PayloadError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 200
        return
    text = payload.decode("utf-8").strip(" \t\r\n").upper()
    if isinstance(command, DetectCommand):
        assert feature == "detect" and text == command.state
        return
    assert feature == "unlock" and isinstance(command, UnlockCommand)
    if command.seconds is None:
        assert text in ("ON", "PRESS", "UNLOCK")
    else:
        assert PLAIN.fullmatch(text), text
        assert command.seconds == float(Decimal(text))
        assert MIN_UNLOCK_SECONDS <= command.seconds <= MAX_UNLOCK_SECONDS


@SETTINGS
@given(whole=st.integers(0, 999), frac=st.none() | st.text("0123456789", min_size=1, max_size=3))
def test_every_plain_decimal_in_range_is_accepted(whole, frac):
    text = str(whole) if frac is None else f"{whole}.{frac}"
    value = float(Decimal(text))
    try:
        command = parse_payload("unlock", text.encode())
    except PayloadError as exc:
        assert not MIN_UNLOCK_SECONDS <= value <= MAX_UNLOCK_SECONDS and "seconds must be in" in str(exc)
    else:
        assert command == UnlockCommand(seconds=value)


@SETTINGS
@given(topic=st.text(max_size=40) | st.sampled_from(["faceagent/door/unlock/set", "faceagent/door/detect/set"]),
       payload=st.binary(max_size=32), retained=st.booleans())
def test_the_router_never_raises_and_hands_on_only_parsed_commands(topic, payload, retained, caplog):
    seen: list[Command] = []

    def on_command(camera: str, feature: str, command: Command) -> None:
        seen.append(command)

    router = CommandRouter(Topics("faceagent"), cameras=["door"], remote_unlock=["door"], on_command=on_command,
                           on_state=lambda *a: None)
    with caplog.at_level(logging.WARNING, logger="rpi_agent.sinks"):
        caplog.clear()
        router.handle(topic, payload, retained=retained)
    assert all(isinstance(c, (DetectCommand, UnlockCommand)) for c in seen)
    assert not (retained and seen)
    assert all("\n" not in r.getMessage() for r in caplog.records)


@SETTINGS
@given(topic=st.text(max_size=60) | st.builds(lambda part, n: part * n, st.text("ab/é+", min_size=1, max_size=4),
                                             st.integers(16000, 66000)))
def test_a_topic_without_a_problem_is_one_mqtt_can_carry(topic):
    problem = topic_problem(topic)
    if problem is not None:
        assert "\n" not in problem
        return
    encoded = topic.encode("utf-8")
    assert 0 < len(encoded) <= MAX_TOPIC_BYTES
    assert not any(c in topic for c in "+#\x00")
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in topic)


@SETTINGS
@given(prefix=st.text(max_size=80))
def test_an_accepted_prefix_gives_valid_topics_for_every_camera(prefix):
    try:
        config = MqttConfig(topic_prefix=prefix)
    except ValueError as exc:
        assert str(exc).startswith(("topic_prefix:", "host:")) and "\n" not in str(exc)
        return
    topics = Topics(config.topic_prefix)
    camera = "c" * 64  # the longest camera name the camera config allows
    for name in (topics.events, topics.faces(camera), topics.snapshot(camera), topics.state(camera, "relay")):
        assert topic_problem(name) is None, name


@SETTINGS
@given(host=st.text(max_size=300) | st.from_regex(r"[a-z0-9.\-]{1,300}", fullmatch=True))
def test_an_accepted_host_is_one_the_resolver_can_encode(host):
    try:
        MqttConfig(host=host)
    except ValueError as exc:
        assert str(exc).startswith("host:") and "\n" not in str(exc)
        return
    try:
        ipaddress.ip_address(host)
    except ValueError:
        assert len(host.rstrip(".").encode("idna")) <= 253  # what socket.getaddrinfo will do with it
