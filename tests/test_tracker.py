"""IoU tracker: matching math by hand, and the new/update/end life cycle on a hand-driven clock."""

from __future__ import annotations

import pytest

from rpi_agent.config.camera import TrackerConfig
from rpi_agent.domain import Detection, FaceEvent
from rpi_agent.tracking.tracker import Tracker, default_id


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 0.1) -> None:
        self.now += seconds


class ClockedTracker(Tracker):
    """The tracker on the hand-driven clock: every call passes the clock's time as capture time."""

    def __init__(self, *args: object, clock: Clock, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.clock = clock

    def update(self, detections, zones=None, *, now=None):  # type: ignore[no-untyped-def, override]
        return super().update(detections, zones, now=self.clock() if now is None else now)

    def expire(self, now=None):  # type: ignore[no-untyped-def, override]
        return super().expire(self.clock() if now is None else now)


A = (10.0, 10.0, 50.0, 60.0)
B = (200.0, 100.0, 240.0, 150.0)


def det(box: tuple[float, float, float, float], score: float = 0.9) -> Detection:
    return Detection(box, score)


def types_of(events: tuple[FaceEvent, ...]) -> list[str]:
    return [e.type for e in events]


def make(clock: Clock, **options: float) -> Tracker:
    return ClockedTracker(TrackerConfig(**options), camera="door", clock=clock)  # type: ignore[arg-type]


def run(tracker: Tracker, clock: Clock, frames: list[list[Detection]], dt: float = 0.1) -> list[list[str]]:
    out = []
    for dets in frames:
        clock.tick(dt)
        out.append(types_of(tracker.update(dets).events))
    return out


def test_new_after_min_hits_and_stable_id() -> None:
    clock = Clock()
    tracker = make(clock, min_hits=3, max_age_frames=2, update_interval=1000.0)
    seen = run(tracker, clock, [[det(A)], [det(A)]])
    assert seen == [[], []]
    assert tracker.active == 0
    clock.tick()
    last_seen = clock.now
    out = tracker.update([det(A)])
    assert types_of(out.events) == ["new"]
    new = out.events[0]
    assert new.before == new.after
    assert new.after.start_time == pytest.approx(1000.1)  # first detection, not announcement
    assert [f.id for f in out.faces] == [new.after.id]
    clock.tick()
    assert types_of(tracker.update([]).events) == []  # first miss: coasting
    assert tracker.active == 1
    clock.tick()
    ended = tracker.update([]).events
    assert types_of(ended) == ["end"]
    assert ended[0].after.id == new.after.id
    assert ended[0].after.end_time == pytest.approx(last_seen)
    assert ended[0].before.end_time is None
    assert tracker.active == 0


def test_candidate_missed_before_min_hits_is_dropped() -> None:
    clock = Clock()
    tracker = make(clock, min_hits=3)
    seen = run(tracker, clock, [[det(A)], [det(A)], [], [det(A)], [det(A)], [det(A)]])
    assert seen == [[], [], [], [], [], ["new"]]


def test_min_hits_one_announces_at_once() -> None:
    clock = Clock()
    tracker = make(clock, min_hits=1)
    assert run(tracker, clock, [[det(A), det(B)]]) == [["new", "new"]]
    ids = {f.id for f in tracker.update([det(A), det(B)]).faces}
    assert len(ids) == 2


def test_ends_after_max_age_seconds_before_frames() -> None:
    clock = Clock()
    tracker = make(clock, min_hits=1, max_age_frames=100, max_age_seconds=2.0)
    run(tracker, clock, [[det(A)]])
    assert run(tracker, clock, [[]], dt=1.9) == [[]]
    assert run(tracker, clock, [[]], dt=0.2) == [["end"]]  # 2.1 s since last seen


def test_max_age_seconds_zero_counts_frames_only() -> None:
    clock = Clock()
    tracker = make(clock, min_hits=1, max_age_frames=3, max_age_seconds=0.0)
    run(tracker, clock, [[det(A)]])
    assert run(tracker, clock, [[], [], []], dt=100.0) == [[], [], ["end"]]


def test_moving_face_keeps_its_id() -> None:
    clock = Clock()
    tracker = make(clock, min_hits=1, iou_threshold=0.3)
    first = tracker.update([det(A)]).faces[0].id
    # Shifted 8 px right: IoU = 32*50 / (2*40*50 - 32*50) = 1600 / 2400 = 0.667.
    moved = tracker.update([det((18.0, 10.0, 58.0, 60.0))])
    assert types_of(moved.events) == []
    assert moved.faces[0].id == first
    # Shifted 30 px further: IoU = 10*50 / (4000 - 500) = 0.143 < 0.3 → a new face, the old one coasts.
    jumped = tracker.update([det((48.0, 10.0, 88.0, 60.0))])
    assert types_of(jumped.events) == ["new"]
    assert jumped.events[0].after.id != first
    assert {f.id for f in jumped.faces} == {first, jumped.events[0].after.id}


def test_updates_are_rate_limited_but_zone_changes_are_not() -> None:
    clock = Clock()
    tracker = make(clock, min_hits=1, update_interval=1.0, score_delta=0.05)
    clock.tick()
    tracker.update([det(A, 0.80)])
    clock.tick(0.5)
    assert types_of(tracker.update([det(A, 0.90)]).events) == []  # significant, but too soon
    clock.tick(0.6)
    out = tracker.update([det(A, 0.91)])  # 1.1 s after the new event
    assert types_of(out.events) == ["update"]
    assert (out.events[0].before.score, out.events[0].after.score) == (0.80, 0.91)
    assert out.events[0].after.top_score == 0.91
    clock.tick(1.5)
    assert types_of(tracker.update([det(A, 0.93)]).events) == []  # 0.02 is not significant
    clock.tick(0.1)
    zoned = tracker.update([det(A, 0.93)], [("porch",)])
    assert types_of(zoned.events) == ["update"]  # zone change goes at once
    assert zoned.events[0].after.current_zones == ("porch",)
    assert zoned.events[0].after.entered_zones == ("porch",)
    clock.tick(0.1)
    left = tracker.update([det(A, 0.93)], [()])
    assert types_of(left.events) == ["update"]
    assert left.events[0].after.current_zones == ()
    assert left.events[0].after.entered_zones == ("porch",)


def test_snapshot_flag_follows_snapshot_zones() -> None:
    clock = Clock()
    tracker = ClockedTracker(TrackerConfig(min_hits=1), camera="door", clock=clock, snapshot_zones=("porch",))
    new = tracker.update([det(A)], [("street",)]).events[0]
    assert not new.after.has_snapshot
    clock.tick()
    upd = tracker.update([det(A)], [("street", "porch")]).events[0]
    assert (upd.type, upd.before.has_snapshot, upd.after.has_snapshot) == ("update", False, True)
    off = ClockedTracker(TrackerConfig(min_hits=1), camera="door", clock=clock, snapshot_zones=None)
    assert not off.update([det(A)]).events[0].after.has_snapshot
    anywhere = ClockedTracker(TrackerConfig(min_hits=1), camera="door", clock=clock, snapshot_zones=())
    assert anywhere.update([det(A)]).events[0].after.has_snapshot


def test_end_all_ends_announced_faces_only() -> None:
    clock = Clock()
    tracker = make(clock, min_hits=2)
    run(tracker, clock, [[det(A)], [det(A), det(B)]])
    events = tracker.end_all()
    assert types_of(events) == ["end"]
    assert events[0].after.box == A
    assert tracker.active == 0
    assert tracker.end_all() == ()


def test_ids_unique_across_restarts_with_the_same_clock() -> None:
    ids = set()
    for _ in range(20):
        tracker = make(Clock(), min_hits=1)
        ids.add(tracker.update([det(A)]).events[0].after.id)
    assert len(ids) == 20
    assert default_id(1700000000.5).startswith("1700000000.500000-")


def test_event_dict_has_frigate_fields() -> None:
    clock = Clock()
    tracker = make(clock, min_hits=1)
    payload = tracker.update([det(A, 0.87654)]).events[0].to_dict()
    assert payload["type"] == "new"
    after = payload["after"]
    assert isinstance(after, dict)
    assert after["label"] == "face"
    assert after["box"] == [10.0, 10.0, 50.0, 60.0]
    assert after["area"] == 2000
    assert after["score"] == 0.8765
    assert after["camera"] == "door"


def test_zones_length_must_match() -> None:
    tracker = make(Clock(), min_hits=1)
    with pytest.raises(ValueError, match="zones has 0 entries for 1 detections"):
        tracker.update([det(A)], [])


def test_expire_ends_faces_when_frames_stop() -> None:
    clock = Clock()
    tracker = make(clock, min_hits=1, max_age_frames=100, max_age_seconds=2.0)
    tracker.update([det(A)])
    clock.tick(1.9)
    assert tracker.expire() == ()
    clock.tick(0.2)
    events = tracker.expire()
    assert types_of(events) == ["end"]
    assert tracker.faces() == ()
    never = make(clock, min_hits=1, max_age_seconds=0.0)
    never.update([det(A)])
    clock.tick(1000)
    assert never.expire() == ()


def test_faces_are_made_once_per_change() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1, max_age_frames=3), camera="door")
    first = tracker.update([Detection((0, 0, 10, 10), 0.9)], now=1.0)
    (new,) = first.events
    assert first.faces == (new.after,) and first.faces[0] is new.after
    coasting = tracker.update([], now=2.0)  # missed: nothing changed, the same face object
    assert coasting.faces[0] is new.after
    moved = tracker.update([Detection((1, 0, 11, 10), 0.9)], now=3.0)
    assert moved.faces[0] is not new.after and moved.faces[0].box == (1, 0, 11, 10)
    assert moved.faces[0].id == new.after.id
