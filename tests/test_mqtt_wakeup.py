"""paho's wake-up socket pair: no byte per message on the loop's own thread, one byte to wake the loop."""

from __future__ import annotations

import select

import paho.mqtt.client as mqtt
from broker_fixtures import WAIT
from paho.mqtt.enums import CallbackAPIVersion

from rpi_agent.sinks.wakeup import publish_here, wake


def _readable(sock) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def _drain(sock) -> None:
    while _readable(sock):
        sock.recv(4096)


def test_publish_on_the_loop_thread_leaves_the_pair_quiet_and_wake_rings_it(broker, recorder):
    rec = recorder(["wake/test"])
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    for _ in range(20):
        client.loop(timeout=0.05)
    pair_in = client._sockpairR
    assert pair_in is not None
    _drain(pair_in)
    for n in range(5):
        info = publish_here(client, "wake/test", f"{n}".encode(), qos=1, retain=False)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS
    assert not _readable(pair_in)
    assert client._sockpairW is not None  # and the pair is back for other threads
    client.publish("wake/test", b"5", qos=1)  # paho's own publish writes its byte
    assert _readable(pair_in)
    _drain(pair_in)
    wake(client)
    assert _readable(pair_in)
    for _ in range(20):
        client.loop(timeout=0.05)
    assert rec.wait_for(lambda: rec.payloads("wake/test") == [b"0", b"1", b"2", b"3", b"4", b"5"], WAIT)
    client.disconnect()


def test_wake_and_publish_without_a_pair_fall_back_to_paho():
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client._sockpairW = None  # not connected yet: paho has made no pair
    wake(client)  # nothing to ring, no error
    info = publish_here(client, "wake/test", b"x", qos=0, retain=False)
    assert info.rc == mqtt.MQTT_ERR_NO_CONN
