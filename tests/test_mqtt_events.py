"""Events over a real Mosquitto: order, QoS 1, outage, restart replay, outbox bound."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from broker_fixtures import WAIT, event_result, sink_config, wait_until

from rpi_agent.config.mqtt import OutboxConfig
from rpi_agent.domain import FaceEvent, Frame, FrameResult, TrackedFace
from rpi_agent.sinks.mqtt import OUTBOX_FILE

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
    message_ids = [json.loads(p)["message_id"] for p in rec.payloads(EVENTS)]
    # A duplicate (sent again after a lost acknowledgement) carries the same message_id.
    assert len(set(message_ids)) == len(sent)
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


KILLED_CHILD = """
import sys, time
from pathlib import Path
from rpi_agent.config.mqtt import HomeAssistantConfig, MqttConfig
from rpi_agent.sinks.mqtt import MqttSink
from rpi_agent.domain import FaceEvent, Frame, FrameResult, TrackedFace
cfg = MqttConfig(host="127.0.0.1", port=int(sys.argv[1]), client_id=sys.argv[3], password_env="",
                 password_credential="", home_assistant=HomeAssistantConfig(enabled=False))
sink = MqttSink(cfg, cameras=["door"], outbox_dir=Path(sys.argv[2]), on_command=lambda *a: None, sw_version="t")
sink.start()
if sys.argv[4] == "online" and not sink.wait_connected(20):
    sys.exit(3)
for i in range(100000):
    face = TrackedFace(id=f"k{i}", camera="door", box=(1.0, 1.0, 9.0, 9.0), score=0.9, top_score=0.9, area=64.0)
    frame = Frame(camera="door", index=i, timestamp=time.time(), rgb=None, width=64, height=64)
    sink.publish(FrameResult(frame=frame, faces=(face,), events=(FaceEvent("new", face, face),), ms={}))
    print(f"k{i}", flush=True)
    time.sleep(0.002)
"""


def test_sigkill_mid_stream_then_restart_delivers_every_event(broker, recorder, make_sink, tmp_path: Path):
    rec = recorder([EVENTS])
    state = tmp_path / "killed-state"
    client_id = "killed-sink"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(broker.port), str(state), client_id, "online"],
                             stdout=subprocess.PIPE, env=env)
    assert child.stdout is not None
    produced = [child.stdout.readline().decode().strip() for _ in range(300)]
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=WAIT)
    produced += [line.decode().strip() for line in child.stdout.read().splitlines()]
    child.stdout.close()
    produced = [p for p in produced if p]
    assert len(produced) >= 300
    restarted = make_sink(sink_config(broker, client_id=client_id), outbox_dir=state, start=False)
    waiting = len(restarted.outbox)
    restarted.start()
    assert restarted.wait_connected(WAIT)
    assert rec.wait_for(lambda: set(produced) <= set(_ids(rec.payloads(EVENTS))), 60), (
        len(set(produced) - set(_ids(rec.payloads(EVENTS)))))
    got = _ids(rec.payloads(EVENTS))
    assert wait_until(lambda: len(restarted.outbox) == 0, WAIT)
    print(json.dumps({"produced": len(produced), "waiting_after_kill": waiting, "received": len(got),
                      "duplicates": len(got) - len(set(got))}))


def test_sigkill_while_the_broker_is_down_then_restart_replays_in_order(broker, recorder, make_sink, tmp_path):
    state = tmp_path / "killed-offline"
    broker.stop()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(broker.port), str(state), "offline-sink",
                              "offline"], stdout=subprocess.PIPE, env=env)
    assert child.stdout is not None
    produced = [child.stdout.readline().decode().strip() for _ in range(100)]
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=WAIT)
    produced += [line.decode().strip() for line in child.stdout.read().splitlines()]
    child.stdout.close()
    broker.start()
    rec = recorder([EVENTS])
    restarted = make_sink(sink_config(broker, client_id="offline-sink"), outbox_dir=state, start=False)
    stored = len(restarted.outbox)
    # The child may have stored one more event than it reported before the kill.
    assert stored - len(produced) in (0, 1)
    restarted.start()
    assert rec.wait_for(lambda: len(rec.on(EVENTS)) >= stored)
    assert wait_until(lambda: len(restarted.outbox) == 0, WAIT)
    got = _ids(rec.payloads(EVENTS))
    assert got[: len(produced)] == produced and len(got) == stored


def _crowd(count: int, start: int) -> FrameResult:
    """One frame with ``count`` new faces (a crowd walking in)."""
    faces = tuple(TrackedFace(id=f"c{start + k}", camera="door", box=(1.0, 1.0, 9.0, 9.0), score=0.9, top_score=0.9,
                              area=64.0) for k in range(count))
    frame = Frame(camera="door", index=start, timestamp=1.0e9 + start, rgb=None, width=64, height=64)
    return FrameResult(frame=frame, faces=faces, events=tuple(FaceEvent("new", f, f) for f in faces), ms={})


def test_a_frames_events_are_committed_together_before_any_is_sent(broker, recorder, make_sink, tmp_path: Path):
    state = tmp_path / "crowd-state"
    broker.stop()
    sink = make_sink(sink_config(broker), outbox_dir=state)
    sink.publish(_crowd(12, 0))
    # On disk when publish returns, seen by another connection: committed, not only in this process.
    with sqlite3.connect(state / OUTBOX_FILE) as other:
        stored = [json.loads(p)["after"]["id"] for (p,) in other.execute("SELECT payload FROM outbox ORDER BY seq")]
    assert stored == [f"c{k}" for k in range(12)]
    broker.start()
    rec = recorder([EVENTS])
    sink.publish(_crowd(7, 12))
    assert rec.wait_for(lambda: len(set(_ids(rec.payloads(EVENTS)))) >= 19)
    assert _ids(rec.payloads(EVENTS))[:19] == [f"c{k}" for k in range(19)]
    # Acknowledgements are removed in batches, each within a loop turn of the network thread.
    assert wait_until(lambda: len(sink.outbox) == 0, WAIT)
