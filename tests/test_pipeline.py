"""Pipeline on the real INT8 model and real photos (and the pass-through detector of a board that
detects on its own): life cycle on capture time, filters, zones, detection switch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rpi_agent.config.camera import CameraConfig, FiltersConfig, TrackerConfig, ZoneConfig
from rpi_agent.detection.base import ReportedFaces
from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.domain import Detection, Frame, FrameResult
from rpi_agent.errors import SourceError
from rpi_agent.imaging.files import load_rgb
from rpi_agent.runtime.pipeline import Pipeline

START = 5000.0  # capture time of frame 0; frames are 0.1 s apart


@pytest.fixture(scope="module")
def detector(built_model: Callable[..., Path]) -> FaceDetector:
    return FaceDetector.from_model(built_model("RFB-320"))


@pytest.fixture(scope="module")
def photo(faces_dir: Path) -> np.ndarray:
    return load_rgb(faces_dir / "24.jpg")  # nine faces of different sizes


def frame(rgb: np.ndarray | None, index: int = 0, reported: tuple[Detection, ...] = ()) -> Frame:
    height, width = (rgb.shape[:2] if rgb is not None else (480, 640))
    return Frame("door", index, START + 0.1 * index, rgb, width, height, reported=reported)


def camera(**sections: object) -> CameraConfig:
    tracker = TrackerConfig(min_hits=3, max_age_frames=2, max_age_seconds=0.0)
    return CameraConfig(name="door", **{"tracker": tracker, **sections})  # type: ignore[arg-type]


def play(pipe: Pipeline, frames: list[Frame]) -> list[FrameResult]:
    return [pipe.step(f) for f in frames]


def events(results: list[FrameResult], kind: str) -> list[str]:
    return [e.after.id for r in results for e in r.events if e.type == kind]


def test_faces_announced_then_ended(detector: FaceDetector, photo: np.ndarray) -> None:
    expected = [f for f in detector.detect(photo).faces if f.score >= 0.7]
    assert len(expected) >= 2
    pipe = Pipeline(camera(), detector)
    black = np.zeros_like(photo)
    results = play(pipe, [frame(photo, i) for i in range(3)] + [frame(black, 3 + i) for i in range(2)])
    assert [len(r.events) for r in results[:2]] == [0, 0]
    news = events(results, "new")
    assert len(news) == len(expected)
    assert len(results[2].faces) == len(expected)
    assert sorted(f.box for f in results[2].faces) == sorted(d.box for d in expected)
    assert results[3].faces and not results[3].events  # coasting through the first miss
    assert sorted(events(results, "end")) == sorted(news)
    assert results[4].faces == ()
    assert {"inference", "filter", "track", "total"} <= set(results[2].ms)


def test_min_size_and_min_score_filters(detector: FaceDetector, photo: np.ndarray) -> None:
    faces = detector.detect(photo).faces
    sides = sorted(min(f.width, f.height) for f in faces)
    min_size = int(sides[len(sides) // 2])
    big = [f for f in faces if min(f.width, f.height) >= min_size and f.score >= 0.7]
    assert 0 < len(big) < len(faces)
    pipe = Pipeline(camera(filters=FiltersConfig(min_size=min_size)), detector)
    result = play(pipe, [frame(photo, i) for i in range(3)])[-1]
    assert len(result.faces) == len(big)
    assert all(min(f.box[2] - f.box[0], f.box[3] - f.box[1]) >= min_size for f in result.faces)

    scores = sorted(f.score for f in faces)
    cut = scores[len(scores) // 2]
    strong = [f for f in faces if f.score >= cut]
    pipe = Pipeline(camera(filters=FiltersConfig(min_score=cut)), detector)
    result = play(pipe, [frame(photo, i) for i in range(3)])[-1]
    assert len(result.faces) == len(strong)


def test_zones_and_required_zones(detector: FaceDetector, photo: np.ndarray) -> None:
    width = photo.shape[1]
    faces = [f for f in detector.detect(photo).faces if f.score >= 0.7]
    left = [f for f in faces if (f.box[0] + f.box[2]) / 2 / width < 0.5]
    assert 0 < len(left) < len(faces)
    zones = {"left": ZoneConfig(((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)))}
    pipe = Pipeline(camera(zones=zones), detector)
    result = play(pipe, [frame(photo, i) for i in range(3)])[-1]
    in_left = [f for f in result.faces if f.current_zones == ("left",)]
    assert len(result.faces) == len(faces)
    assert len(in_left) == len(left)
    assert all(f.entered_zones == f.current_zones for f in result.faces)

    gated = Pipeline(camera(zones=zones, filters=FiltersConfig(zones=("left",))), detector)
    result = play(gated, [frame(photo, i) for i in range(3)])[-1]
    assert len(result.faces) == len(left)


def test_detection_switched_off_ends_faces(detector: FaceDetector, photo: np.ndarray) -> None:
    pipe = Pipeline(camera(), detector)
    first = play(pipe, [frame(photo, i) for i in range(3)])
    news = events(first, "new")
    pipe.set_detect(False)
    assert not pipe.detect
    off = play(pipe, [frame(photo, 3), frame(photo, 4)])
    assert sorted(events(off, "end")) == sorted(news)
    assert [r.faces for r in off] == [(), ()]
    assert off[1].events == ()
    assert "inference" not in off[0].ms
    pipe.set_detect(True)
    again = play(pipe, [frame(photo, 5 + i) for i in range(3)])
    renewed = events(again, "new")
    assert len(renewed) == len(news)
    assert not set(renewed) & set(news)


def test_reported_faces_pass_through_the_filters() -> None:
    given = (Detection((10.0, 10.0, 60.0, 70.0), 0.95), Detection((100.0, 100.0, 102.0, 103.0), 0.99))
    pipe = Pipeline(camera(filters=FiltersConfig(min_size=5)), ReportedFaces())
    results = play(pipe, [frame(None, i, reported=given) for i in range(3)])
    assert "inference" not in results[-1].ms
    assert [f.box for f in results[-1].faces] == [given[0].box]  # the 2x3 px one is filtered out

    board = Pipeline(camera(), ReportedFaces())
    results = play(board, [frame(None, i, reported=given) for i in range(3)])
    assert len(events(results, "new")) == 2

    # A board's faces meet the same one threshold (the daemon passes AppConfig.min_score).
    strict = Pipeline(camera(), ReportedFaces(), min_score=0.97)
    results = play(strict, [frame(None, i, reported=given) for i in range(3)])
    assert [f.box for f in results[-1].faces] == [given[1].box]


def test_events_carry_capture_time_not_processing_time() -> None:
    face = (Detection((10.0, 10.0, 60.0, 70.0), 0.95),)
    pipe = Pipeline(camera(), ReportedFaces())
    # A recording replayed long after it was made: its frames say when they were captured.
    results = play(pipe, [frame(None, i, reported=face) for i in range(3)] + [frame(None, 3 + i) for i in range(2)])
    new = next(e for r in results for e in r.events if e.type == "new")
    end = next(e for r in results for e in r.events if e.type == "end")
    assert new.after.start_time == START
    assert end.after.end_time == pytest.approx(START + 0.2)


def test_the_face_detector_refuses_frames_without_pixels(detector: FaceDetector) -> None:
    pipe = Pipeline(camera(), detector)
    with pytest.raises(SourceError, match="no pixels"):
        pipe.step(frame(None))


def test_flush_ends_open_faces(detector: FaceDetector, photo: np.ndarray) -> None:
    pipe = Pipeline(camera(), detector)
    news = events(play(pipe, [frame(photo, i) for i in range(3)]), "new")
    closing = pipe.flush(123.0)
    assert closing is not None
    assert closing.frame.camera == "door"
    assert sorted(e.after.id for e in closing.events if e.type == "end") == sorted(news)
    assert pipe.flush(124.0) is None


def test_expire_while_the_source_is_quiet(detector: FaceDetector, photo: np.ndarray) -> None:
    cam = CameraConfig(name="door", tracker=TrackerConfig(min_hits=3, max_age_frames=50, max_age_seconds=2.0))
    pipe = Pipeline(cam, detector)
    news = events(play(pipe, [frame(photo, i) for i in range(3)]), "new")
    assert pipe.expire(START + 1.0) is None
    quiet = pipe.expire(START + 5.0)
    assert quiet is not None
    assert quiet.faces == ()
    assert sorted(e.after.id for e in quiet.events if e.type == "end") == sorted(news)
