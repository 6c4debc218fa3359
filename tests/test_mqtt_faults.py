"""Faults around the MQTT sink on a real Mosquitto: poisoned outbox entries, a network thread that
meets the unexpected, the MQTT 5 → 3.1.1 fallback in mid-stream, live retained commands."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
from broker import Broker, V311OnlyProxy
from broker_fixtures import WAIT, Recorder, event_result, sink_config, wait_until

from rpi_agent.sinks.commands import Command
from rpi_agent.sinks.mqtt import OUTBOX_FILE
from rpi_agent.sinks.outbox import Outbox

EVENTS = "faceagent/events"
DETECT_SET = "faceagent/door/detect/set"


def _ids(rec) -> list[str]:
    return [json.loads(p)["after"]["id"] for p in rec.payloads(EVENTS)]


def _seed(state, entries: list[tuple[str, bytes]]) -> None:
    """Leave entries in the outbox file as an earlier run (with another config) would have."""
    with Outbox(state / OUTBOX_FILE, max_messages=100) as box:
        for topic, payload in entries:
            box.append(topic, payload)


def test_entries_the_broker_cannot_take_are_set_aside_and_the_rest_delivered(broker, recorder, make_sink,
                                                                              tmp_path, caplog):
    state = tmp_path / "state"
    _seed(state, [("fa\x00x/events", b"nul"), ("fa+/events", b"wildcard"), ("fa\x01/events", b"control"),
                  (EVENTS, b'{"after": {"id": "old"}}')])
    rec = recorder([EVENTS])
    with caplog.at_level(logging.ERROR, logger="rpi_agent.sinks"):
        sink = make_sink(sink_config(broker), outbox_dir=state)
        sent = [event_result() for _ in range(5)]
        for result in sent:
            sink.publish(result)
        assert rec.wait_for(lambda: len(rec.on(EVENTS)) == 6)
    assert _ids(rec) == ["old"] + [r.events[0].after.id for r in sent]
    assert wait_until(lambda: len(sink.outbox) == 0, WAIT)
    stats = sink.stats()
    assert stats["refused"] == 3 and stats["connections"] == 1, stats
    messages = [r.getMessage() for r in caplog.records]
    assert any("set aside: its topic holds a NUL character" in m for m in messages), messages
    sink.close()
    with Outbox(state / OUTBOX_FILE, max_messages=100) as box:
        assert box.refused == 3


@pytest.fixture
def small_packet_broker(tmp_path, broker_certs):
    instance = Broker(tmp_path / "small-broker", certs=broker_certs, extra_config="max_packet_size 4000\n")
    instance.start()
    yield instance
    instance.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_an_entry_the_broker_hangs_up_on_is_set_aside_after_three_tries(small_packet_broker, make_sink, tmp_path,
                                                                         protocol):
    broker = small_packet_broker
    state = tmp_path / "state"
    _seed(state, [(EVENTS, b'{"after": {"id": "big"}, "pad": "' + b"x" * 5000 + b'"}')])
    rec = Recorder(broker, [EVENTS])
    try:
        sink = make_sink(sink_config(broker, protocol=protocol), outbox_dir=state)
        result = event_result()
        sink.publish(result)
        assert rec.wait_for(lambda: _ids(rec) == [result.events[0].after.id]), sink.stats()
        assert wait_until(lambda: len(sink.outbox) == 0, WAIT)
    finally:
        rec.close()
    stats = sink.stats()
    assert stats["refused"] == 1 and stats["outbox_waiting"] == 0, stats
    assert stats["connections"] >= 3, stats


def test_the_network_thread_survives_a_host_the_resolver_rejects(make_sink, broker, caplog):
    config = sink_config(broker)
    # The config refuses this host; the thread must survive it even so (defence in depth).
    object.__setattr__(config, "host", "broker..lan")
    with caplog.at_level(logging.DEBUG, logger="rpi_agent.sinks"):
        sink = make_sink(config)
        sink.publish(event_result())
        assert wait_until(lambda: sink.stats()["errors"] >= 3, WAIT)
    assert sink.running and not sink.connected
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "cannot connect to broker..lan:" in errors[0] and "UnicodeError" in errors[0], errors
    assert "Traceback" not in caplog.text
    stats = sink.stats()
    assert "UnicodeError" in str(stats["last_error"]) and stats["outbox_waiting"] == 1, stats


def test_fallback_to_311_while_events_are_published_loses_none(broker, recorder, make_sink, caplog):
    proxy = V311OnlyProxy(broker.host, broker.port, refuse_v5=False)
    total = 400
    sent: list[str] = []
    try:
        rec = recorder([EVENTS])
        sink = make_sink(sink_config(broker, port=proxy.port))
        assert sink.wait_connected(WAIT)

        def produce() -> None:
            for _ in range(total):
                result = event_result()
                sent.append(result.events[0].after.id)
                sink.publish(result)
                time.sleep(0.002)

        with caplog.at_level(logging.INFO, logger="rpi_agent.sinks"):
            producer = threading.Thread(target=produce)
            producer.start()
            assert wait_until(lambda: len(rec.on(EVENTS)) >= 50, WAIT)
            proxy.refuse_v5 = True
            proxy.drop()  # the broker "loses" MQTT 5: the sink reconnects, is refused, rebuilds for 3.1.1
            producer.join(WAIT)
            assert rec.wait_for(lambda: set(sent) <= set(_ids(rec)), WAIT), (len(set(_ids(rec))), sink.stats())
        assert proxy.refused >= 1
        assert any("(MQTT 3.1.1)" in r.getMessage() for r in caplog.records)
        received = _ids(rec)
        # At-least-once: duplicates are allowed, loss and reordering of first arrivals are not.
        assert list(dict.fromkeys(received)) == sent
        assert sink.stats()["protocol"] == "3.1.1"
    finally:
        proxy.close()


class Handler:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, camera: str, feature: str, command: Command) -> str | None:
        self.calls.append(str(command))
        return None


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_live_retained_command(broker, recorder, make_sink, caplog, protocol):
    """MQTT 5 keeps the retain flag on live delivery (Retain As Published), so the sink refuses it;
    MQTT 3.1.1 brokers clear it, so the sink cannot tell and executes it (docs/mqtt.md says so)."""
    executed = protocol == "3.1.1"
    handler = Handler()
    rec = recorder(["faceagent/door/detect/state"])
    sink = make_sink(sink_config(broker, protocol=protocol), on_command=handler)
    assert sink.wait_connected(WAIT)
    with caplog.at_level(logging.WARNING, logger="rpi_agent.sinks"):
        rec.client.publish(DETECT_SET, b"OFF", qos=1, retain=True).wait_for_publish(WAIT)
        rec.client.publish(DETECT_SET, b"ON", qos=1).wait_for_publish(WAIT)
        assert wait_until(lambda: "ON" in handler.calls, WAIT)
    assert handler.calls == (["OFF", "ON"] if executed else ["ON"])
    assert any("refused retained command" in r.getMessage() for r in caplog.records) is not executed
    rec.client.publish(DETECT_SET, b"", qos=1, retain=True).wait_for_publish(WAIT)  # clear it for other tests
