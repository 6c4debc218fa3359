"""Two ways around paho's wake-up socket pair, for the MQTT network thread and the threads feeding it.

paho's client keeps a socket pair to end the wait of a loop running on another thread: it writes a
byte to it on every publish. The network thread publishes on its own thread (no byte needed), and
the daemon's delivery thread needs the loop to take a turn when it has stored events (a byte
wanted). Both use paho's ``_sockpairW`` attribute (paho 2.x); without it they fall back to plain
paho behaviour.
"""

from __future__ import annotations

import contextlib
from typing import Any


def publish_here(client: Any, topic: str, payload: bytes, *, qos: int, retain: bool) -> Any:
    """``client.publish`` on the loop's own thread.

    paho writes a wake-up byte to its socket pair on every publish, for a loop running on another
    thread; on the loop's own thread the byte is only one more system call per message (and one
    more wait for the GIL after it), so the pair is out of paho's sight meanwhile.
    """
    pair = getattr(client, "_sockpairW", None)
    if pair is None:
        return client.publish(topic, payload, qos=qos, retain=retain)
    client._sockpairW = None
    try:
        return client.publish(topic, payload, qos=qos, retain=retain)
    finally:
        client._sockpairW = pair


def wake(client: Any) -> None:
    """End the loop's wait in paho's ``select`` from any thread.

    With a byte on paho's own wake-up socket pair: what paho writes itself when another thread publishes.
    """
    pair = getattr(client, "_sockpairW", None)
    if pair is None:
        return
    # OSError: full (a wake-up is pending anyway) or closed (the client is being replaced).
    with contextlib.suppress(OSError):
        pair.send(b"\0")
