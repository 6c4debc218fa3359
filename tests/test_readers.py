"""Camera readers and the one-slot mailbox; stats helpers. A scripted source stands in for a camera."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from rpi_agent.domain import Frame
from rpi_agent.errors import SourceError
from rpi_agent.runtime.readers import CameraReader, FrameMailbox
from rpi_agent.runtime.stats import StatsWindow, collect_stats, cpu_temperature, format_line


class ScriptedCamera:
    """Yields ``count`` frames as fast as asked (a camera outpacing the detector), then maybe fails."""

    def __init__(self, camera: str, count: int, *, fail: str | None = None) -> None:
        self.camera = camera
        self.count = count
        self.fail = fail
        self.closed = threading.Event()

    def frames(self) -> Iterator[Frame]:
        for index in range(self.count):
            if self.closed.is_set():
                return
            yield Frame(camera=self.camera, index=index, timestamp=time.time(), rgb=None, width=4, height=4)
        if self.fail:
            raise SourceError(self.fail)

    def close(self) -> None:
        self.closed.set()


def drain(mailbox: FrameMailbox, *, delay: float = 0.0) -> list[Frame]:
    taken: list[Frame] = []
    while not mailbox.all_finished():
        frames = mailbox.take(0.5)
        taken += frames
        if frames and delay:
            time.sleep(delay)
    return taken


def test_live_source_keeps_only_the_newest_frame():
    mailbox = FrameMailbox(["door"])
    reader = CameraReader(ScriptedCamera("door", 200), mailbox, live=True)
    reader.start()
    taken = drain(mailbox, delay=0.01)
    reader.stop()
    state = mailbox.state["door"]
    assert state.frames == 200 and state.finished and state.error is None
    assert len(taken) + state.dropped == 200
    assert state.dropped > 0  # the slow consumer never saw most frames...
    assert taken[-1].index == 199  # ...but always got the newest one
    assert [f.index for f in taken] == sorted(f.index for f in taken)


def test_recorded_source_waits_and_loses_nothing():
    mailbox = FrameMailbox(["door"])
    reader = CameraReader(ScriptedCamera("door", 50), mailbox, live=False)
    reader.start()
    taken = drain(mailbox, delay=0.002)
    reader.stop()
    assert [f.index for f in taken] == list(range(50))
    assert mailbox.state["door"].dropped == 0


def test_max_frames_and_several_cameras():
    mailbox = FrameMailbox(["a", "b"])
    readers = [CameraReader(ScriptedCamera(name, 30), mailbox, live=False, max_frames=7) for name in ("a", "b")]
    for reader in readers:
        reader.start()
    taken = drain(mailbox)
    for reader in readers:
        reader.stop()
    assert sorted((f.camera, f.index) for f in taken) == [(c, i) for c in ("a", "b") for i in range(7)]


def test_source_error_ends_the_reader_with_the_reason():
    mailbox = FrameMailbox(["door"])
    reader = CameraReader(ScriptedCamera("door", 3, fail="camera unplugged"), mailbox, live=False)
    reader.start()
    taken = drain(mailbox)
    reader.stop()
    assert len(taken) == 3
    assert mailbox.state["door"].error == "camera unplugged"


def test_stop_unblocks_a_waiting_reader():
    mailbox = FrameMailbox(["door"])
    source = ScriptedCamera("door", 10_000)
    reader = CameraReader(source, mailbox, live=False)
    reader.start()
    assert mailbox.take(5.0)  # one frame taken; the reader now waits on a full slot
    reader.stop(timeout=5.0)
    assert source.closed.is_set() and mailbox.state["door"].finished


def test_stats_window_means_and_line(tmp_path):
    now = [0.0]
    stats = StatsWindow(clock=lambda: now[0])
    for ms in (10.0, 20.0):
        stats.add("door", {"inference": ms, "total": ms + 2}, events=1)
    now[0] = 2.0
    snap = stats.snapshot(reset=True)
    assert snap == {"fps": 1.0, "cameras": {"door": {"fps": 1.0, "frames": 2, "ms": {"inference": 15.0,
                                                                                      "total": 17.0}}}}
    assert stats.total_frames == 2 and stats.total_events == 2
    assert stats.snapshot(reset=False)["cameras"] == {}
    line = format_line({**snap, "cpu_temp": 51.2, "outbox_dropped": 3, "outbox_waiting": 0})
    assert line == "fps 1.0 | door 1.0 fps inference 15.0ms total 17.0ms | cpu 51.2°C | outbox dropped 3"


def test_cpu_temperature_reads_millidegrees(tmp_path):
    zone = tmp_path / "temp"
    zone.write_text("48312\n")
    assert cpu_temperature(zone) == 48.3
    zone.write_text("garbage")
    assert cpu_temperature(zone) is None
    assert cpu_temperature(tmp_path / "absent") is None


def test_stats_report_carries_the_mqtt_thread_failures():
    window = StatsWindow()
    window.add("door", {"total": 3.0}, events=2)
    mqtt = {"outbox_waiting": 4, "outbox_dropped": 0, "refused": 1, "errors": 2,
            "last_error": "UnicodeError: label empty or too long", "connections": 7}
    stats = collect_stats(window, dropped_frames=5, mqtt=mqtt)
    assert {k: stats[k] for k in ("outbox_waiting", "refused", "errors", "last_error", "dropped_frames")} == {
        "outbox_waiting": 4, "refused": 1, "errors": 2, "last_error": "UnicodeError: label empty or too long",
        "dropped_frames": 5}
    assert "connections" not in stats and stats["frames_total"] == 1 and stats["events_total"] == 2
    assert format_line(stats).endswith(
        "dropped frames 5 | outbox waiting 4 | refused 1 | errors 2 | last error UnicodeError: label empty or too long")
