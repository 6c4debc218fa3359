"""`faceagent eval widerface` end to end on real WIDER FACE val images and the real built models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rpi_agent.cli import main
from rpi_agent.detection.face_detector import FaceDetector
from rpi_agent.evaluation.runner import EVAL_OPTIONS, list_val_images, predict
from rpi_agent.evaluation.widerface import SETTINGS, evaluate, load_ground_truth
from rpi_agent.paths import model_file

SUBSET = 40
# On these 40 images INT8 and FP32 differ by up to ~0.011 AP; the full val_dev figures
# (docs/accuracy.md) hold INT8 to 0.01 of FP32.
SUBSET_TOLERANCE = 0.02
# Reference AP of upstream FP32 on val_dev, stretch (../shared/README.md).
REFERENCE = {"RFB": (0.760, 0.651, 0.385), "slim": (0.749, 0.629, 0.351)}


@pytest.fixture(scope="session")
def widerface(shared: Path) -> Path:
    return shared / "data" / "widerface"


@pytest.fixture(scope="session")
def truth(widerface: Path) -> dict:
    return load_ground_truth(widerface / "ground_truth")


@pytest.fixture(scope="session")
def subset_dir(widerface: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every 10th val_dev image (40 of them), in the official layout."""
    root = tmp_path_factory.mktemp("val_subset")
    for event, name, path in list_val_images(widerface / "val_dev" / "images")[::10][:SUBSET]:
        (root / event).mkdir(exist_ok=True)
        (root / event / f"{name}.jpg").symlink_to(path)
    return root


def built(name: str, precision: str) -> Path:
    path = model_file(name, precision)
    if not path.is_file():
        pytest.fail(f"{path} is not built: run `faceagent models build {name}`")
    return path


def test_ground_truth_is_the_val_set(truth: dict) -> None:
    assert len(truth) == 3226
    assert truth[("0--Parade", "0_Parade_marchingband_1_465")].boxes.shape[1] == 4
    faces = dict.fromkeys(SETTINGS, 0)
    for image in truth.values():
        for setting in SETTINGS:
            keep = image.keep[setting]
            assert np.all((keep >= 0) & (keep < image.boxes.shape[0]))
            faces[setting] += keep.size
        # Each difficulty level adds faces to the easier ones.
        assert set(image.keep["easy"]) <= set(image.keep["medium"]) <= set(image.keep["hard"])
    assert 0 < faces["easy"] < faces["medium"] < faces["hard"]


@pytest.mark.parametrize("name", ["RFB-320", "slim-320"])
def test_int8_ap_close_to_fp32_on_subset(name: str, subset_dir: Path, truth: dict) -> None:
    images = list_val_images(subset_dir)
    ap = {}
    for precision in ("int8", "fp32"):
        detector = FaceDetector.from_model(built(name, precision), resize="stretch", options=EVAL_OPTIONS)
        ap[precision] = evaluate(predict(detector, images, progress=False), truth).ap
    for setting in SETTINGS:
        assert ap["int8"][setting] == pytest.approx(ap["fp32"][setting], abs=SUBSET_TOLERANCE), setting
    assert ap["fp32"]["easy"] > ap["fp32"]["medium"] > ap["fp32"]["hard"] > 0.1


def test_cli_writes_submission_plot_and_rescores(subset_dir: Path, tmp_path: Path, capsys) -> None:
    out, plot = tmp_path / "pred", tmp_path / "pr.png"
    code = main(["-q", "eval", "widerface", "--images", str(subset_dir), "--model", "slim-320",
                 "--out", str(out), "--plot", str(plot), "--json"])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["images"] == SUBSET and record["input"] == [320, 240]
    assert len(list(out.glob("*/*.txt"))) == SUBSET
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Scoring the written files again gives the same figures.
    assert main(["-q", "eval", "widerface", "--pred", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ap"] == record["ap"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--images", "/nonexistent"], "image folder not found"),
        (["--gt", "/nonexistent"], "ground truth file missing"),
        (["--model", "no-such-model"], "is not built"),
        (["--pred", "/nonexistent"], "prediction folder not found"),
    ],
)
def test_cli_bad_input_is_one_line(args: list[str], message: str, subset_dir: Path, capsys) -> None:
    base = ["eval", "widerface", "--images", str(subset_dir)]
    if "--pred" in args:
        base = ["eval", "widerface"]
    assert main(["-q", *base, *args]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_size_checks(subset_dir: Path, upstream_dir: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["eval", "widerface", "--size", "640by480"])
    assert exc.value.code == 2
    tflite = upstream_dir / "version-slim-320_without_postprocessing.tflite"
    assert main(["-q", "eval", "widerface", "--images", str(subset_dir), "--model", str(tflite),
                 "--size", "640x480"]) == 1
    assert "takes 320x240 input, not 640x480" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["RFB", "slim"])
def test_protocol_reproduces_reference_on_val_dev(arch: str, upstream_dir: Path, widerface: Path, truth: dict) -> None:
    """Upstream FP32 with upstream's settings must give the published val_dev AP."""
    model = upstream_dir / f"version-{arch}-320_without_postprocessing.tflite"
    detector = FaceDetector.from_model(model, resize="stretch", options=EVAL_OPTIONS)
    result = evaluate(predict(detector, list_val_images(widerface / "val_dev" / "images"), progress=False), truth)
    for setting, reference in zip(SETTINGS, REFERENCE[arch], strict=True):
        assert result.ap[setting] == pytest.approx(reference, abs=0.003), setting
