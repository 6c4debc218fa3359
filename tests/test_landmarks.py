"""Five-point landmarks through the product: decoding, FaceDetector, detect --json/--annotate,
tracker and MQTT events, the landmark error, and the refusals. Real built INT8 models, real photos."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from broker_fixtures import event_result, sink_config

from rpi_agent.cli import main
from rpi_agent.config.camera import TrackerConfig
from rpi_agent.detection.decoder import DecodeOptions, decode_landmarks, postprocess, postprocess_indexed
from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.detection.layouts import RETINAFACE, SSD_LANDMARK, ULTRA_LIGHT, layout_for
from rpi_agent.detection.priors import PriorSpec, generate_priors
from rpi_agent.domain import Detection
from rpi_agent.errors import ModelError
from rpi_agent.evaluation.landmarks import as_labels, collect, landmark_error, read_labels
from rpi_agent.imaging.files import load_rgb
from rpi_agent.imaging.listing import iter_image_paths
from rpi_agent.tracking.tracker import Tracker

CROWD = "1.jpg"  # 720x478, dozens of faces


@pytest.fixture(scope="module")
def photos(faces_dir: Path) -> list[np.ndarray]:
    return [load_rgb(p) for p in iter_image_paths([faces_dir])]


def test_landmark_decoding_is_centre_plus_offset_times_variance_times_size() -> None:
    priors = np.array([[100.0, 50.0, 20.0, 40.0], [10.0, 10.0, 8.0, 8.0]], np.float32)
    offsets = np.arange(20, dtype=np.float32).reshape(2, 10) / 10
    points = decode_landmarks(offsets, priors, PriorSpec(320, 240))
    assert points.shape == (2, 5, 2)
    assert points[0, 1].tolist() == pytest.approx([100 + 0.2 * 0.1 * 20, 50 + 0.3 * 0.1 * 40])
    assert points[1, 4].tolist() == pytest.approx([10 + 1.8 * 0.1 * 8, 10 + 1.9 * 0.1 * 8])


def test_indexed_postprocess_names_the_prior_of_each_survivor() -> None:
    spec = PriorSpec(320, 240)
    priors = generate_priors(spec)
    rng = np.random.default_rng(1)
    scores = rng.random(priors.shape[0]).astype(np.float32)
    loc = rng.normal(0, 0.5, (priors.shape[0], 4)).astype(np.float32)
    options = DecodeOptions(score_threshold=0.9)
    boxes, kept_scores, idx = postprocess_indexed(scores, loc, priors, spec, options=options)
    plain_boxes, plain_scores = postprocess(scores, loc, priors, spec, options=options)
    assert np.array_equal(boxes, plain_boxes) and np.array_equal(kept_scores, plain_scores)
    assert np.array_equal(scores[idx], kept_scores) and 0 < idx.size < priors.shape[0] // 4


def test_layout_is_read_from_the_output_rows_and_a_mismatch_is_refused() -> None:
    assert layout_for(width=320, height=240, rows=4420, has_landmarks=False, label="m") is ULTRA_LIGHT
    assert layout_for(width=320, height=240, rows=4420, has_landmarks=True, label="m") is SSD_LANDMARK
    assert layout_for(width=320, height=256, rows=3360, has_landmarks=True, label="m") is RETINAFACE
    with pytest.raises(ModelError, match=r"outputs 4420 boxes but the priors for 640x480 number 17640 \(ssd-landmark\) "
                                         r"or 12600 \(retinaface\); the file does not match its priors"):
        layout_for(width=640, height=480, rows=4420, has_landmarks=True, label="m")


@pytest.mark.parametrize("name", ["retinaface-mnet-320", "RFB-landmark-320", "slim-landmark-640"])
def test_confident_faces_have_five_plausible_landmarks(name: str, built_model, photos: list[np.ndarray]) -> None:
    detector = FaceDetector.from_model(built_model(name), options=DecodeOptions(score_threshold=0.8))
    assert detector.landmarks and detector.layout.name in ("retinaface", "ssd-landmark")
    faces = [f for rgb in photos for f in detector.detect(rgb).faces]
    assert len(faces) > 100
    upright = 0
    for face in faces:
        assert face.landmarks is not None and len(face.landmarks) == 5
        x1, y1, x2, y2 = face.box
        pad_x, pad_y = 0.25 * (x2 - x1), 0.25 * (y2 - y1)
        for x, y in face.landmarks:
            assert x1 - pad_x <= x <= x2 + pad_x and y1 - pad_y <= y <= y2 + pad_y
        eyes_y = (face.landmarks[0][1] + face.landmarks[1][1]) / 2
        mouth_y = (face.landmarks[3][1] + face.landmarks[4][1]) / 2
        upright += eyes_y < face.landmarks[2][1] < mouth_y
    assert upright / len(faces) > 0.9  # these photos show upright faces: eyes above nose above mouth


def test_int8_landmarks_agree_with_fp32(built_model, photos: list[np.ndarray]) -> None:
    found = {}
    for precision in ("int8", "fp32"):
        detector = FaceDetector.from_model(built_model("retinaface-mnet-320", precision),
                                           options=DecodeOptions(score_threshold=0.5))
        found[precision] = {("faces", str(i)): collect(detector.detect(rgb).faces) for i, rgb in enumerate(photos)}
    error = landmark_error(found["int8"], as_labels(found["fp32"]))
    assert error.matched > 0.9 * error.labelled > 100
    assert error.nme is not None and error.nme < 0.05


def test_ultra_light_models_have_no_landmarks_and_refuse_to_give_them(built_model, photos) -> None:
    detector = FaceDetector.from_model(built_model("RFB-320"))
    assert not detector.landmarks
    assert all(f.landmarks is None for f in detector.detect(photos[0]).faces)
    with pytest.raises(ModelError, match="has no landmark output"):
        FaceDetector.from_model(built_model("RFB-320"), landmarks=True)


def test_a_model_whose_outputs_do_not_match_the_priors_is_refused(built_model, photos) -> None:
    from rpi_agent.detection.tflite import TFLiteDetector

    detector = FaceDetector(TFLiteDetector(built_model("retinaface-mnet-320")), spec=PriorSpec(320, 256))
    with pytest.raises(ModelError, match="model outputs 3360 boxes but the priors for 320x256 number 4700"):
        detector.detect(photos[0])


def test_detect_json_and_annotate_carry_the_landmarks(faces_dir: Path, tmp_path: Path, capsys) -> None:
    image = faces_dir / CROWD
    assert main(["-q", "detect", str(image), "--model", "retinaface-mnet-320", "--json", "--landmarks",
                 "--annotate", str(tmp_path)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert len(record["faces"]) > 10
    for face in record["faces"]:
        assert len(face["landmarks"]) == 5 and all(len(p) == 2 for p in face["landmarks"])
    drawn = cv2.imread(str(tmp_path / "1.jpg"))
    original = cv2.imread(str(image))
    x, y = (round(v) for v in record["faces"][0]["landmarks"][2])  # the nose tip is drawn in its colour
    assert np.abs(drawn[y, x].astype(int) - original[y, x].astype(int)).sum() > 60
    assert main(["-q", "detect", str(image), "--model", "RFB-320", "--json"]) == 0
    assert all("landmarks" not in f for f in json.loads(capsys.readouterr().out)["faces"])


def test_landmarks_asked_of_a_model_without_them_is_one_line(faces_dir: Path, capsys) -> None:
    assert main(["-q", "detect", str(faces_dir / CROWD), "--model", "RFB-320", "--landmarks"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no landmark output" in err[0]


def test_tracked_faces_and_their_events_carry_rounded_landmarks(built_model, photos) -> None:
    detector = FaceDetector.from_model(built_model("retinaface-mnet-320"), options=DecodeOptions(score_threshold=0.9))
    faces = detector.detect(photos[0]).faces
    tracker = Tracker(TrackerConfig(min_hits=1), camera="door")
    events = tracker.update(faces, now=1.0).events
    assert events and all(e.type == "new" for e in events)
    payload = events[0].to_dict()["after"]
    assert isinstance(payload, dict)
    assert payload["landmarks"] == [[round(x), round(y)] for x, y in faces[0].landmarks or ()]
    assert "landmarks" not in tracker.update([Detection(f.box, f.score) for f in faces], now=2.0).faces[0].to_dict()


def test_mqtt_face_events_carry_the_landmarks(broker, recorder, make_sink) -> None:
    rec = recorder(["faceagent/events"])
    sink = make_sink(sink_config(broker))
    assert sink.wait_connected(5.0)
    result = event_result()
    event = result.events[0]
    points = ((50.4, 60.6), (80.2, 60.1), (65.0, 75.5), (55.9, 95.0), (78.0, 94.4))
    after = replace(event.after, landmarks=points)
    sink.publish(replace(result, events=(replace(event, after=after, before=after),)))
    assert rec.wait_for(lambda: len(rec.on("faceagent/events")) >= 1)
    message = json.loads(rec.payloads("faceagent/events")[0])
    assert message["after"]["landmarks"] == [[50, 61], [80, 60], [65, 76], [56, 95], [78, 94]]


def test_the_shared_val_labels_hold_boxes_only(shared: Path) -> None:
    labels = read_labels(shared / "data" / "widerface" / "retinaface_val_label.txt")
    assert len(labels) == 3222
    assert sum(v.boxes.shape[0] for v in labels.values()) == 39704
    assert all(np.isnan(v.points).all() for v in labels.values())


def test_landmark_error_against_labelled_points(tmp_path: Path) -> None:
    labels = tmp_path / "label.txt"
    labels.write_text("# 0--Parade/a.jpg\n"
                      "10 20 40 40 15 30 0.0 35 30 0.0 25 40 0.0 18 50 0.0 32 50 0.0 0.9\n"
                      "200 200 10 10 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1\n")
    truth = read_labels(labels)
    points = truth[("0--Parade", "a")].points[0] + np.array([3.0, 4.0])  # every point 5 px off
    faces = [Detection((11.0, 21.0, 50.0, 60.0), 0.9, tuple(map(tuple, points))),  # type: ignore[arg-type]
             Detection((200.0, 200.0, 210.0, 210.0), 0.8, ((0.0, 0.0),) * 5)]
    error = landmark_error({("0--Parade", "a"): collect(faces)}, truth)
    assert (error.matched, error.labelled) == (1, 1)  # the face without points does not count
    assert error.nme == pytest.approx(5.0 / 40.0)


def test_box_voting_averages_the_overlapping_candidates_by_score() -> None:
    from rpi_agent.detection.decoder import vote

    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.3, 0.8], np.float32)
    voted = vote(np.array([0, 2]), boxes, scores, 0.5)
    assert voted[0].tolist() == pytest.approx([0.25, 0.25, 10.25, 10.25])  # (0.9 * b0 + 0.3 * b1) / 1.2
    assert voted[1].tolist() == pytest.approx([50, 50, 60, 60])  # alone: unchanged


def test_corner_resize_keeps_aspect_from_the_top_left_and_maps_points_back() -> None:
    from rpi_agent.detection.preprocess import fit_to_input

    frame = np.full((300, 600, 3), 200, np.uint8)
    net_in, mapping = fit_to_input(frame, 320, 320, "corner", (123, 117, 104))
    assert net_in.shape == (320, 320, 3) and (net_in[:160] == 200).all()
    assert net_in[160:].reshape(-1, 3).tolist()[0] == [123, 117, 104]
    assert mapping.points_to_frame(np.array([[160.0, 80.0]], np.float32))[0].tolist() == pytest.approx([300, 150])
