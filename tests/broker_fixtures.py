"""Pytest fixtures around the real Mosquitto of ``broker.py``: broker, subscribers, sinks, events.

Registered from ``tests/conftest.py`` with ``pytest_plugins``. Tests skip (with the install
line) when mosquitto or openssl is missing.
"""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from broker import Broker, Certs, make_certs, mosquitto_binary, wait_until
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from rpi_agent.config.camera import SnapshotConfig
from rpi_agent.config.mqtt import HomeAssistantConfig, MqttConfig, OutboxConfig
from rpi_agent.domain import FaceEvent, Frame, FrameResult, TrackedFace
from rpi_agent.sinks.commands import CommandHandler
from rpi_agent.sinks.mqtt import MqttSink

WAIT = 20.0
"""Upper bound for any wait on the broker; tests normally finish far sooner."""


class Recorder:
    """A subscriber that keeps every message; its session survives broker restarts."""

    def __init__(self, broker: Broker, topics: list[str]) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self._cond = threading.Condition()
        self._topics = topics
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"rec-{uuid.uuid4().hex[:10]}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.subscribed = threading.Event()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect(broker.host, broker.port, clean_start=False, properties=props)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.loop_start()
        if not self.subscribed.wait(WAIT):
            raise RuntimeError("test subscriber could not subscribe")

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        client.subscribe([(t, 1) for t in self._topics])

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def on(self, topic: str) -> list[mqtt.MQTTMessage]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def payloads(self, topic: str) -> list[bytes]:
        return [bytes(m.payload) for m in self.on(topic)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def sink_config(broker: Broker, **changes: object) -> MqttConfig:
    """A config for ``broker``'s anonymous listener with fast reconnects and no discovery."""
    base = MqttConfig(
        host=broker.host, port=broker.port, client_id=f"sink-{uuid.uuid4().hex[:10]}", keepalive=5,
        reconnect_min=0.2, reconnect_max=1.0, password_env="FACEAGENT_TEST_UNSET_PASSWORD", password_credential="",
        home_assistant=HomeAssistantConfig(enabled=False), outbox=OutboxConfig(max_messages=10000),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


_ids = itertools.count()


def face(camera: str, face_id: str, *, score: float = 0.9, zones: tuple[str, ...] = (),
         has_snapshot: bool = True) -> TrackedFace:
    return TrackedFace(id=face_id, camera=camera, box=(40.0, 30.0, 120.0, 130.0), score=score, top_score=score,
                       area=8000.0, current_zones=zones, entered_zones=zones, start_time=1.0e9,
                       has_snapshot=has_snapshot)


def event_result(camera: str = "door", *, kind: str = "new", face_id: str | None = None, rgb: object = None,
                 faces: int = 1, zones: tuple[str, ...] = (), has_snapshot: bool = True) -> FrameResult:
    """A pipeline result carrying one event for one face (marked for a snapshot unless told)."""
    index = next(_ids)
    fid = face_id or f"{uuid.uuid4().hex[:8]}-{index}"
    tracked = face(camera, fid, zones=zones, has_snapshot=has_snapshot)
    height, width = (480, 640) if rgb is None else rgb.shape[:2]  # type: ignore[attr-defined]
    frame = Frame(camera=camera, index=index, timestamp=1.0e9 + index, rgb=rgb, width=width, height=height)
    shown = tuple(face(camera, f"{fid}-{k}") for k in range(faces - 1)) + ((tracked,) if faces else ())
    return FrameResult(frame=frame, faces=shown, events=(FaceEvent(kind, tracked, tracked),), ms={"detect": 5.0})


@pytest.fixture(scope="session")
def broker_certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    if mosquitto_binary() is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto is not installed: apt-get install -y mosquitto")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: apt-get install -y openssl")
    return make_certs(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def broker(tmp_path: Path, broker_certs: Certs) -> Iterator[Broker]:
    """A fresh mosquitto for one test."""
    instance = Broker(tmp_path / "broker", certs=broker_certs)
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def recorder(broker: Broker) -> Iterator[Callable[[list[str]], Recorder]]:
    """Factory of subscribers on the anonymous listener; all closed after the test."""
    made: list[Recorder] = []

    def make(topics: list[str]) -> Recorder:
        rec = Recorder(broker, topics)
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.close()


@pytest.fixture
def make_sink(tmp_path: Path) -> Iterator[Callable[..., MqttSink]]:
    """Factory of started sinks (outbox under tmp_path unless given); all closed after the test."""
    made: list[MqttSink] = []

    def make(config: MqttConfig, *, outbox_dir: Path | None = None, start: bool = True,
             on_command: CommandHandler | None = None,
             snapshots: Mapping[str, SnapshotConfig] | None = None, remote_unlock: Collection[str] = ()) -> MqttSink:
        sink = MqttSink(config, cameras=["door"], outbox_dir=outbox_dir or tmp_path / "state",
                        on_command=on_command or (lambda c, f, p: None), sw_version="0.0-test",
                        snapshots=snapshots, remote_unlock=remote_unlock)
        made.append(sink)
        if start:
            sink.start()
        return sink

    yield make
    for sink in made:
        sink.close()


__all__ = ["WAIT", "Recorder", "broker", "broker_certs", "event_result", "make_sink", "recorder", "sink_config",
           "wait_until"]
