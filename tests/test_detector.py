import cv2
import numpy as np
import pytest

from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.detection.priors import PriorSpec
from rpi_agent.detection.quantization import Quantization
from rpi_agent.detection.tflite import TFLiteDetector, input_lut
from rpi_agent.errors import ModelError
from rpi_agent.imaging.files import load_rgb


def test_input_lut_identity_for_raw_uint8_and_shift_for_int8():
    assert input_lut(np.dtype(np.uint8), Quantization(1 / 128, 127)) is None
    lut = input_lut(np.dtype(np.int8), Quantization(1 / 128, -1))
    assert lut is not None and lut[0] == -128 and lut[127] == -1 and lut[255] == 127
    flt = input_lut(np.dtype(np.float32), Quantization())
    assert flt is not None and flt[127] == 0.0 and flt[255] == pytest.approx(1.0)


@pytest.mark.parametrize("precision", ["int8", "fp32"])
@pytest.mark.parametrize("name", ["RFB-320", "slim-320"])
def test_built_models_load_with_expected_io(built_model, name, precision):
    det = TFLiteDetector(built_model(name, precision))
    assert det.input_size == (320, 240)
    assert det.runtime in ("ai_edge_litert", "tflite_runtime")
    assert det.is_quantized == (precision == "int8")
    raw = det.run(np.zeros((240, 320, 3), np.uint8))
    assert raw.scores.shape == (4420,) and raw.loc.shape == (4420, 4)
    if precision == "int8":
        assert raw.scores.dtype in (np.int8, np.uint8) and not raw.score_quant.is_float


def test_int8_finds_the_faces_of_a_group_photo(built_model, faces_dir):
    fd = FaceDetector.from_model(built_model("RFB-320"))
    result = fd.detect(load_rgb(faces_dir / "2.jpg"))
    # 2.jpg shows four people facing the camera.
    assert len(result.faces) == 4
    assert all(f.score > 0.9 for f in result.faces)
    assert set(result.ms) == {"preprocess", "inference", "decode"}


def test_upstream_fp32_tflite_runs(upstream_dir, faces_dir):
    fd = FaceDetector.from_model(upstream_dir / "version-slim-320_without_postprocessing.tflite")
    faces = fd.detect(load_rgb(faces_dir / "2.jpg")).faces
    assert len(faces) == 4
    h, w = load_rgb(faces_dir / "2.jpg").shape[:2]
    for f in faces:
        x1, y1, x2, y2 = f.box
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h


def test_missing_empty_truncated_and_foreign_files(tmp_path, upstream_dir, faces_dir):
    with pytest.raises(ModelError, match="not found"):
        TFLiteDetector(tmp_path / "none.tflite")
    (tmp_path / "empty.tflite").write_bytes(b"")
    with pytest.raises(ModelError, match="not a TFLite model"):
        TFLiteDetector(tmp_path / "empty.tflite")
    with pytest.raises(ModelError, match="not a TFLite model"):
        TFLiteDetector(faces_dir / "1.jpg")
    data = (upstream_dir / "version-slim-320_without_postprocessing.tflite").read_bytes()
    (tmp_path / "cut.tflite").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="cannot load model"):
        TFLiteDetector(tmp_path / "cut.tflite")


def test_output_count_must_match_priors(upstream_dir, faces_dir):
    det = TFLiteDetector(upstream_dir / "version-RFB-320_without_postprocessing.tflite")
    fd = FaceDetector(det, spec=PriorSpec(640, 480))
    with pytest.raises(ModelError, match="4420 boxes but the priors for 640x480 number 17640"):
        fd.detect(load_rgb(faces_dir / "2.jpg"))


def test_delegate_is_reported_truthfully(built_model):
    # LiteRT hands the whole INT8 graph to XNNPACK: one DELEGATE node.
    det = TFLiteDetector(built_model("RFB-320"))
    assert det.runtime == "ai_edge_litert"
    assert det.delegate_nodes == 1
    fp32 = TFLiteDetector(built_model("RFB-320", "fp32"))
    assert fp32.delegate_nodes >= 1


def test_int8_input_flips_the_top_bit_like_the_lut(built_model, faces_dir):
    det = TFLiteDetector(built_model("RFB-320"))
    assert det.input_quant == Quantization(1 / 128, -1)
    lut = input_lut(np.dtype(np.int8), det.input_quant)
    assert lut is not None
    rgb = cv2.resize(load_rgb(faces_dir / "2.jpg"), det.input_size)
    fast = det.run(rgb)
    fast_scores, fast_loc = fast.scores.copy(), fast.loc.copy()
    interp = det._interp
    interp.set_tensor(interp.get_input_details()[0]["index"], lut[rgb][None])
    interp.invoke()
    slow = det._loc["index"], det._scores["index"]
    np.testing.assert_array_equal(fast_loc, interp.get_tensor(slow[0]).reshape(-1, 4))
    np.testing.assert_array_equal(fast_scores, interp.get_tensor(slow[1]).reshape(-1, 2)[:, 1])
    assert (fast_scores.astype(np.int16) > 0).sum() > 4  # a group photo: some priors score above 0.5
