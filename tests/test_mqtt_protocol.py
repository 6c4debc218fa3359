"""MQTT 3.1.1: chosen in config, or fallen back to when the broker refuses MQTT 5."""

from __future__ import annotations

import json
import logging

from broker import V311OnlyProxy
from broker_fixtures import WAIT, event_result, sink_config

EVENTS = "faceagent/events"


def test_protocol_311_from_config(broker, recorder, make_sink):
    rec = recorder([EVENTS, "faceagent/available"])
    sink = make_sink(sink_config(broker, protocol="3.1.1"))
    assert sink.wait_connected(WAIT)
    sent = [event_result() for _ in range(10)]
    for result in sent:
        sink.publish(result)
    assert rec.wait_for(lambda: len(rec.on(EVENTS)) == 10)
    assert [json.loads(p)["after"]["id"] for p in rec.payloads(EVENTS)] == [r.events[0].after.id for r in sent]
    sink.close()
    assert rec.wait_for(lambda: rec.payloads("faceagent/available")[-1:] == [b"stopped"])


def test_falls_back_to_311_when_the_broker_refuses_5(broker, recorder, make_sink, caplog):
    proxy = V311OnlyProxy(broker.host, broker.port)
    try:
        rec = recorder([EVENTS])
        with caplog.at_level(logging.INFO, logger="rpi_agent.sinks"):
            sink = make_sink(sink_config(broker, port=proxy.port))
            sink.publish(event_result())  # queued in the outbox before the first connection
            assert sink.wait_connected(WAIT)
            sink.publish(event_result())
            assert rec.wait_for(lambda: len(rec.on(EVENTS)) == 2)
        assert proxy.refused == 1
        assert any("falling back to 3.1.1" in r.getMessage() for r in caplog.records)
        assert any("(MQTT 3.1.1)" in r.getMessage() for r in caplog.records)
    finally:
        proxy.close()
