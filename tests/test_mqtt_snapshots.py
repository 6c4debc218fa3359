"""Face counts and JPEG snapshots on a real Mosquitto, from real photos."""

from __future__ import annotations

import dataclasses
import threading
import time

import cv2
import numpy as np
import pytest
from broker_fixtures import WAIT, event_result, face, sink_config

from rpi_agent.config.camera import SnapshotConfig
from rpi_agent.domain import FaceEvent, Frame
from rpi_agent.imaging.files import load_rgb
from rpi_agent.sinks.snapshot import SnapshotWorker, encode_snapshot, wants_snapshot

FACES = "faceagent/door/faces"
SNAPSHOT = "faceagent/door/face/snapshot"


@pytest.fixture(scope="module")
def photo(faces_dir) -> np.ndarray:
    return load_rgb(sorted(faces_dir.glob("*.jpg"))[0])


def _decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_face_count_is_retained_and_sent_only_on_change(broker, recorder, make_sink):
    rec = recorder([FACES])
    sink = make_sink(sink_config(broker))
    assert sink.wait_connected(WAIT)
    for count in (1, 1, 2, 2, 0):
        sink.publish(event_result(kind="update", faces=count))
    assert rec.wait_for(lambda: rec.payloads(FACES) == [b"1", b"2", b"0"])
    late = recorder([FACES])
    assert late.wait_for(lambda: late.payloads(FACES) == [b"0"]) and late.on(FACES)[0].retain


def test_full_frame_snapshot_is_a_retained_jpeg(broker, recorder, make_sink, photo):
    rec = recorder([SNAPSHOT])
    sink = make_sink(sink_config(broker), snapshots={"door": SnapshotConfig(crop=False, quality=70)})
    assert sink.wait_connected(WAIT)
    sink.publish(event_result(rgb=photo))
    assert rec.wait_for(lambda: len(rec.on(SNAPSHOT)) == 1)
    assert _decode(rec.payloads(SNAPSHOT)[0]).shape == photo.shape
    late = recorder([SNAPSHOT])
    assert late.wait_for(lambda: len(late.on(SNAPSHOT)) == 1) and late.on(SNAPSHOT)[0].retain


def test_snapshot_only_for_faces_in_the_given_zones(broker, recorder, make_sink, photo):
    rec = recorder([SNAPSHOT, FACES])
    policy = {"door": SnapshotConfig(crop=True, zones=("entrance",))}
    sink = make_sink(sink_config(broker), snapshots=policy)
    assert sink.wait_connected(WAIT)
    sink.publish(event_result(rgb=photo, zones=("street",), faces=1))
    sink.publish(event_result(kind="update", faces=2))  # a later message as a sentinel
    assert rec.wait_for(lambda: rec.payloads(FACES)[-1:] == [b"2"])
    assert rec.on(SNAPSHOT) == []
    sink.publish(event_result(rgb=photo, zones=("entrance",)))
    assert rec.wait_for(lambda: len(rec.on(SNAPSHOT)) == 1)
    crop = _decode(rec.payloads(SNAPSHOT)[0])
    assert crop.shape[0] < photo.shape[0] and crop.shape[1] < photo.shape[1]


def test_disabled_snapshots_send_none(broker, recorder, make_sink, photo):
    rec = recorder([SNAPSHOT, FACES])
    sink = make_sink(sink_config(broker), snapshots={"door": SnapshotConfig(enabled=False)})
    assert sink.wait_connected(WAIT)
    sink.publish(event_result(rgb=photo, faces=3))
    assert rec.wait_for(lambda: rec.payloads(FACES) == [b"3"])
    assert rec.on(SNAPSHOT) == []


def test_crop_uses_the_higher_resolution_snapshot_image(photo):
    height, width = photo.shape[:2]
    small = cv2.resize(photo, (width // 2, height // 2))
    result = event_result(rgb=small)
    face = result.events[0].after
    frame = dataclasses.replace(result.frame, snapshot=photo)
    crop_small = _decode(encode_snapshot(result.frame, face, crop=True, quality=90) or b"")
    crop_big = _decode(encode_snapshot(frame, face, crop=True, quality=90) or b"")
    assert crop_big.shape[0] == pytest.approx(2 * crop_small.shape[0], abs=3)
    assert crop_big.shape[1] == pytest.approx(2 * crop_small.shape[1], abs=3)
    x1, y1, x2, y2 = face.box
    # 40 % margin on each side, clipped at the image border.
    mx, my = 0.4 * (x2 - x1), 0.4 * (y2 - y1)
    expected_w = min(small.shape[1], x2 + mx) - max(0, x1 - mx)
    expected_h = min(small.shape[0], y2 + my) - max(0, y1 - my)
    assert crop_small.shape[:2] == pytest.approx((expected_h, expected_w), abs=2)


def test_no_image_no_snapshot():
    result = event_result()
    assert isinstance(result.frame, Frame) and isinstance(result.events[0], FaceEvent)
    assert encode_snapshot(result.frame, result.events[0].after, crop=True, quality=80) is None


def test_snapshot_follows_the_trackers_mark():
    marked, unmarked = face("door", "a"), face("door", "a", has_snapshot=False)
    better = dataclasses.replace(marked, top_score=0.97)
    assert wants_snapshot(FaceEvent("new", marked, marked), zones=())
    assert not wants_snapshot(FaceEvent("new", unmarked, unmarked), zones=())
    assert wants_snapshot(FaceEvent("update", unmarked, marked), zones=())  # the mark appears
    assert not wants_snapshot(FaceEvent("update", marked, marked), zones=())  # nothing better
    assert wants_snapshot(FaceEvent("update", marked, better), zones=())
    assert not wants_snapshot(FaceEvent("end", marked, better), zones=())
    assert not wants_snapshot(FaceEvent("new", marked, marked), zones=("entrance",))


def test_snapshots_wait_one_per_camera_and_replaced_ones_are_counted(photo):
    delivered: list[tuple[str, bytes]] = []
    taken, release = threading.Event(), threading.Event()

    def deliver(camera: str, jpeg: bytes) -> None:
        taken.set()
        release.wait(WAIT)  # a slow consumer: the worker is busy with the first snapshot
        delivered.append((camera, jpeg))

    worker = SnapshotWorker(deliver)
    policy = SnapshotConfig(crop=False)
    frames = [event_result(rgb=photo[: 100 + 20 * k]) for k in range(5)]
    worker.submit("door", frames[0].frame, frames[0].events[0].after, policy)
    assert taken.wait(WAIT)
    for result in frames[1:4]:
        worker.submit("door", result.frame, result.events[0].after, policy)  # each replaces the one before
    worker.submit("hall", frames[4].frame, frames[4].events[0].after, policy)  # its own slot
    assert worker.stats()["snapshots_dropped"] == 2
    release.set()
    assert worker.drain(WAIT)
    heights = {camera: _decode(jpeg).shape[0] for camera, jpeg in delivered[1:]}
    assert len(delivered) == 3 and _decode(delivered[0][1]).shape[0] == 100
    assert heights == {"door": 160, "hall": 180}
    worker.close()
    worker.submit("door", frames[0].frame, frames[0].events[0].after, policy)  # too late: counted, not encoded
    assert worker.stats() == {"snapshots": 3, "snapshots_dropped": 3, "snapshot_errors": 0}


def test_a_camera_gets_at_most_one_snapshot_per_interval_and_the_latest_view(photo):
    delivered: list[tuple[float, int]] = []  # (when, image height)
    worker = SnapshotWorker(lambda camera, jpeg: delivered.append((time.monotonic(), _decode(jpeg).shape[0])))
    policy = SnapshotConfig(crop=False, min_interval=0.4)
    frames = [event_result(rgb=photo[: 100 + 20 * k]) for k in range(3)]
    worker.submit("door", frames[0].frame, frames[0].events[0].after, policy)
    assert worker.drain(WAIT)
    submitted = time.monotonic()
    for result in frames[1:]:
        worker.submit("door", result.frame, result.events[0].after, policy)  # the second replaces the first
    assert worker.drain(WAIT)
    worker.close()
    assert [height for _, height in delivered] == [100, 140]  # the latest view, not the first that waited
    assert delivered[1][0] - delivered[0][0] >= 0.4 - 0.01 and delivered[1][0] > submitted
    assert worker.stats() == {"snapshots": 2, "snapshots_dropped": 1, "snapshot_errors": 0}


def test_without_an_interval_every_request_is_encoded_at_once_and_close_does_not_wait(photo):
    delivered: list[int] = []
    worker = SnapshotWorker(lambda camera, jpeg: delivered.append(_decode(jpeg).shape[0]))
    result = event_result(rgb=photo[:100])
    for _ in range(3):
        worker.submit("door", result.frame, result.events[0].after, SnapshotConfig(crop=False, min_interval=0.0))
        assert worker.drain(WAIT)
    assert delivered == [100, 100, 100]
    worker.submit("door", result.frame, result.events[0].after, SnapshotConfig(crop=False, min_interval=60.0))
    started = time.monotonic()
    worker.close(timeout=WAIT)
    assert delivered == [100] * 4 and time.monotonic() - started < WAIT  # not 60 s later


def test_a_snapshot_that_fails_is_counted_and_the_worker_goes_on(photo, caplog):
    delivered: list[bytes] = []

    def deliver(camera: str, jpeg: bytes) -> None:
        if not delivered:
            delivered.append(b"")
            raise RuntimeError("consumer gone")
        delivered.append(jpeg)

    worker = SnapshotWorker(deliver)
    result, policy = event_result(rgb=photo), SnapshotConfig(crop=False)
    for _ in range(2):
        worker.submit("door", result.frame, result.events[0].after, policy)
        assert worker.drain(WAIT)
    worker.close()
    assert len(delivered) == 2 and _decode(delivered[1]).shape == photo.shape
    assert worker.stats() == {"snapshots": 1, "snapshots_dropped": 0, "snapshot_errors": 1}
    assert any("snapshot failed" in r.getMessage() for r in caplog.records)


def test_publish_returns_before_the_snapshot_is_encoded_and_the_sink_counts_it(broker, recorder, make_sink, photo):
    rec = recorder([SNAPSHOT])
    sink = make_sink(sink_config(broker), snapshots={"door": SnapshotConfig(crop=False)})
    assert sink.wait_connected(WAIT)
    for _ in range(20):
        sink.publish(event_result(rgb=photo))
    assert sink.drain_snapshots(WAIT)
    stats = sink.stats()
    assert stats["snapshots"] + stats["snapshots_dropped"] == 20 and stats["snapshots"] >= 1
    assert rec.wait_for(lambda: len(rec.on(SNAPSHOT)) == stats["snapshots"])


def test_snapshot_keeps_the_colours_and_follows_the_quality(photo):
    red = np.zeros((120, 160, 3), np.uint8)
    red[..., 0] = 220
    result = event_result(rgb=red)
    face_ = result.events[0].after
    decoded = _decode(encode_snapshot(result.frame, face_, crop=False, quality=90) or b"")  # BGR
    assert decoded.shape == red.shape
    assert abs(int(decoded[..., 2].mean()) - 220) <= 3 and decoded[..., :2].max() <= 10
    photo_result = event_result(rgb=photo)
    low = encode_snapshot(photo_result.frame, photo_result.events[0].after, crop=False, quality=30) or b""
    high = encode_snapshot(photo_result.frame, photo_result.events[0].after, crop=False, quality=95) or b""
    assert low[:2] == high[:2] == b"\xff\xd8" and len(low) < len(high) / 2
