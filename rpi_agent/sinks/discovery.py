"""Home Assistant MQTT discovery payloads: pure functions, no MQTT library.

One device per daemon (node id), and per camera: a ``binary_sensor`` (occupancy), a ``sensor``
(face count, ``state_class: measurement``), an ``image`` (the retained JPEG snapshot), a
``switch`` for detection on/off, a diagnostic ``enum`` sensor for the source's state and, where the
camera has a relay, a ``binary_sensor`` of device class ``lock`` (on = unlocked, Home Assistant's
convention) plus, only where remote unlock is enabled, a ``button``.

Entity ids: ``default_entity_id`` (``object_id`` is deprecated) for Home Assistant 2025.10 and later;
earlier versions drop the key and name an entity after its device and its own name, which give the
same id: device ``hall`` (the node id, unless ``device_name`` says otherwise) and name ``door face
occupancy`` make ``binary_sensor.hall_door_face_occupancy`` either way.

Example:
    >>> msgs = discovery_messages(Topics("faceagent"), cameras=["door"], node_id="hall",
    ...                           sw_version="0.1.0")
    >>> msgs[0][0]
    'homeassistant/binary_sensor/hall/door_face_occupancy/config'
    >>> msgs[0][1]["default_entity_id"]
    'binary_sensor.hall_door_face_occupancy'
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from rpi_agent.sinks.topics import Topics

Payload = dict[str, object]

# HA treats any payload other than online/offline as unknown; map our "stopped" to offline too.
AVAILABILITY_TEMPLATE = "{{ 'online' if value == 'online' else 'offline' }}"
OCCUPIED_TEMPLATE = "{{ 'ON' if (value | int(0)) > 0 else 'OFF' }}"
# Enum states are lower case in Home Assistant (translation keys); the topic carries ONLINE etc.
SOURCE_STATES = ("online", "retrying", "ended")
LOWER_TEMPLATE = "{{ value | lower }}"


def device_block(*, node_id: str, name: str, sw_version: str) -> Payload:
    """The ``device`` block shared by every entity of this daemon."""
    return {
        "identifiers": [f"faceagent_{node_id}"],
        "name": name or node_id,
        "manufacturer": "faceagent",
        "model": "faceagent face detector",
        "sw_version": sw_version,
    }


def _entity(
    component: str, object_id: str, name: str, *, topics: Topics, node_id: str, device: Payload
) -> Payload:
    return {
        "name": name,
        "unique_id": f"{node_id}_{object_id}",
        "default_entity_id": f"{component}.{node_id}_{object_id}",
        "availability_topic": topics.available,
        "availability_template": AVAILABILITY_TEMPLATE,
        "device": device,
    }


def camera_entities(
    camera: str, *, topics: Topics, node_id: str, device: Payload, unlock: bool, relay: bool = False
) -> list[tuple[str, str, Payload]]:
    """``(component, object_id, payload)`` for one camera's entities."""

    def entity(component: str, suffix: str, name: str, extra: Payload) -> tuple[str, str, Payload]:
        object_id = f"{camera}_{suffix}"
        payload = _entity(component, object_id, f"{camera} {name}", topics=topics, node_id=node_id, device=device)
        payload.update(extra)
        return component, object_id, payload

    entities = [
        entity("binary_sensor", "face_occupancy", "face occupancy", {
            "state_topic": topics.faces(camera), "value_template": OCCUPIED_TEMPLATE, "device_class": "occupancy"}),
        entity("sensor", "face_count", "face count", {
            "state_topic": topics.faces(camera), "state_class": "measurement", "unit_of_measurement": "faces",
            "icon": "mdi:face-recognition"}),
        entity("image", "face_snapshot", "face snapshot", {
            "image_topic": topics.snapshot(camera), "content_type": "image/jpeg"}),
        entity("switch", "detection", "detection", {
            "command_topic": topics.command(camera, "detect"), "state_topic": topics.state(camera, "detect"),
            "payload_on": "ON", "payload_off": "OFF", "icon": "mdi:cctv"}),
        entity("sensor", "source", "source", {
            "state_topic": topics.state(camera, "source"), "value_template": LOWER_TEMPLATE,
            "device_class": "enum", "options": list(SOURCE_STATES), "entity_category": "diagnostic",
            "icon": "mdi:video-input-component"}),
    ]
    if relay:
        entities.append(entity("binary_sensor", "relay", "relay", {
            "state_topic": topics.state(camera, "relay"), "payload_on": "UNLOCKED", "payload_off": "LOCKED",
            "device_class": "lock"}))
    if unlock:
        entities.append(entity("button", "unlock", "unlock", {
            "command_topic": topics.command(camera, "unlock"), "payload_press": "PRESS", "icon": "mdi:door-open"}))
    return entities


def discovery_messages(
    topics: Topics,
    *,
    cameras: Sequence[str],
    node_id: str,
    sw_version: str,
    discovery_prefix: str = "homeassistant",
    device_name: str = "",
    unlock_cameras: Collection[str] = (),
    relay_cameras: Collection[str] = (),
) -> list[tuple[str, Payload]]:
    """Every discovery ``(topic, payload)``; publish each retained as JSON.

    Topics follow ``<discovery_prefix>/<component>/<node_id>/<object_id>/config``. Cameras in
    ``unlock_cameras`` count as having a relay too.
    """
    device = device_block(node_id=node_id, name=device_name, sw_version=sw_version)
    # Home Assistant names the software behind an entity in its log and UI from the origin block.
    origin: Payload = {"name": "faceagent", "sw_version": sw_version}
    out: list[tuple[str, Payload]] = []
    for camera in cameras:
        for component, object_id, payload in camera_entities(
            camera, topics=topics, node_id=node_id, device=device, unlock=camera in unlock_cameras,
            relay=camera in relay_cameras or camera in unlock_cameras,
        ):
            payload["origin"] = origin
            out.append((f"{discovery_prefix}/{component}/{node_id}/{object_id}/config", payload))
    return out
