"""Events over a real Mosquitto: order, QoS 1, outage, restart replay, outbox bound."""

from __future__ import annotations

import json
import time
from pathlib import Path

from broker_fixtures import WAIT, event_result, sink_config, wait_until

from rpi_agent.config.mqtt import OutboxConfig

EVENTS = "faceagent/events"


def _ids(recorder_msgs: list[bytes]) -> list[str]:
    return [json.loads(p)["after"]["id"] for p in recorder_msgs]


def test_events_arrive_in_order_with_their_shape(broker, recorder, make_sink):
    rec = recorder([EVENTS])
    sink = make_sink(sink_config(broker))
    assert sink.wait_connected(WAIT)
    results = [event_result(kind=("new", "update", "end")[i % 3]) for i in range(60)]
    for result in results:
        sink.publish(result)
    sent = [r.events[0].after.id for r in results]
    assert rec.wait_for(lambda: len(rec.on(EVENTS)) >= len(sent)), rec.payloads(EVENTS)[-3:]
    assert _ids(rec.payloads(EVENTS)) == sent
    first = json.loads(rec.payloads(EVENTS)[0])
    assert first["type"] == "new" and first["after"]["label"] == "face" and first["after"]["camera"] == "door"
    assert wait_until(lambda: len(sink.outbox) == 0, WAIT)


def test_broker_outage_of_ten_seconds_loses_nothing(broker, recorder, make_sink, caplog):
    rec = recorder([EVENTS])
    sink = make_sink(sink_config(broker))
    assert sink.wait_connected(WAIT)
    sent: list[str] = []

    def burst(n: int) -> None:
        for _ in range(n):
            result = event_result()
            sent.append(result.events[0].after.id)
            sink.publish(result)

    burst(20)
    broker.stop()
    assert wait_until(lambda: not sink.connected, WAIT)
    down_until = time.monotonic() + 10.0
    while time.monotonic() < down_until:
        burst(5)
        time.sleep(0.5)
    assert len(sink.outbox) > 0
    broker.start()
    burst(20)
    assert rec.wait_for(lambda: len(set(_ids(rec.payloads(EVENTS)))) >= len(sent), 60), (
        len(sent), len(rec.payloads(EVENTS)))
    got = _ids(rec.payloads(EVENTS))
    assert set(got) == set(sent)
    assert wait_until(lambda: len(sink.outbox) == 0, WAIT)
    assert sink.stats()["outbox_dropped"] == 0
    print(json.dumps({"outage_s": 10, "events_sent": len(sent), "received": len(got),
                      "distinct": len(set(got)), "duplicates": len(got) - len(set(got))}))


def test_restart_replays_the_outbox_in_order(broker, recorder, make_sink, tmp_path: Path):
    state = tmp_path / "restart-state"
    offline = sink_config(broker, port=broker.port)
    broker.stop()
    first = make_sink(offline, outbox_dir=state)
    sent = []
    for _ in range(15):
        result = event_result()
        sent.append(result.events[0].after.id)
        first.publish(result)
    first.close()
    broker.start()
    rec = recorder([EVENTS])
    second = make_sink(sink_config(broker, client_id=offline.client_id), outbox_dir=state)
    assert len(second.outbox) == 15
    later = event_result()
    sent.append(later.events[0].after.id)
    second.publish(later)
    assert rec.wait_for(lambda: len(rec.on(EVENTS)) >= len(sent))
    assert _ids(rec.payloads(EVENTS)) == sent
    assert wait_until(lambda: len(second.outbox) == 0, WAIT)


def test_outbox_bound_drops_the_oldest_and_counts_them(broker, recorder, make_sink):
    broker.stop()
    sink = make_sink(sink_config(broker, outbox=OutboxConfig(max_messages=10)))
    sent = []
    for _ in range(25):
        result = event_result()
        sent.append(result.events[0].after.id)
        sink.publish(result)
    assert len(sink.outbox) == 10
    assert sink.stats()["outbox_dropped"] == 15
    broker.start()
    rec = recorder([EVENTS, "faceagent/stats"])
    assert rec.wait_for(lambda: len(rec.on(EVENTS)) >= 10)
    assert _ids(rec.payloads(EVENTS)) == sent[15:]
    sink.publish_stats({"fps": 9.5})
    assert rec.wait_for(lambda: len(rec.on("faceagent/stats")) >= 1)
    stats = json.loads(rec.payloads("faceagent/stats")[0])
    assert stats["fps"] == 9.5 and stats["mqtt"]["outbox_dropped"] == 15
