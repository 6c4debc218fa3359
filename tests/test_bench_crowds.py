"""`faceagent bench` times the decode on the crowd photos too, in the same run, and counts it in the acceptance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rpi_agent.cli import main


@pytest.fixture()
def crowd_and_one(faces_dir: Path, tmp_path: Path) -> Path:
    for name in ("17.jpg", "5.jpg"):
        (tmp_path / name).symlink_to(faces_dir / name)
    return tmp_path


def test_bench_reports_the_crowd_share(built_model, crowd_and_one: Path, capsys: pytest.CaptureFixture[str]) -> None:
    built_model("retinaface-mnet-320")
    argv = ["-q", "bench", "--model", "retinaface-mnet-320", "--images", str(crowd_and_one), "--rounds", "1", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["environment"]["crowds"] == ["17.jpg"] and report["environment"]["resize"] == "auto"
    (record,) = report["variants"]
    assert record["resize"] == "corner"  # the landmark models' own
    crowds, alone = record["median_ms"]["int8_crowds"], record["median_ms"]["int8_alone"]
    share = record["ratios"]["decode_vs_inference_crowds"]
    assert share == pytest.approx(crowds["decode"] / crowds["inference"], rel=0.01)
    within = alone["decode"] / alone["inference"] < 0.15 and share < 0.15
    assert record["acceptance"]["decode_under_15pct_of_inference"] is within
    assert record["int8_decode_steps_ms"]["faces"] > 0


def test_bench_without_crowds_and_a_missing_one(crowd_and_one: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (crowd_and_one / "17.jpg").unlink()
    argv = ["-q", "bench", "--model", "RFB-320", "--images", str(crowd_and_one), "--rounds", "1", "--json"]
    assert main(argv) == 0
    (record,) = json.loads(capsys.readouterr().out)["variants"]
    assert "int8_crowds" not in record["median_ms"] and record["ratios"]["decode_vs_inference_crowds"] is None
    assert main([*argv, "--crowds", "17.jpg"]) == 1
    err = capsys.readouterr().err.strip()
    assert "17.jpg" in err and len(err.splitlines()) == 1


PROFILE = Path(__file__).resolve().parents[1] / "scripts" / "profile_decode.py"


def test_profile_decode_times_each_step_cold_and_warm(built_model, crowd_and_one: Path) -> None:
    built_model("RFB-320")
    done = subprocess.run([sys.executable, str(PROFILE), "--model", "RFB-320", "--images", str(crowd_and_one),
                           "--rounds", "1"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    steps = report["microseconds"]["RFB-320"]
    assert report["cpu"] and report["images"] == 2
    for kind in ("after_inference", "warm"):
        assert steps[kind]["candidates"] >= steps[kind]["faces"] > 0
        parts = sum(steps[kind][name] for name in ("threshold", "sort", "decode_boxes", "nms", "output"))
        assert parts == pytest.approx(steps[kind]["total"], rel=0.05, abs=1.0)


def test_profile_decode_refuses_a_missing_model_in_one_line(crowd_and_one: Path) -> None:
    done = subprocess.run([sys.executable, str(PROFILE), "--model", "no-such-model", "--images", str(crowd_and_one),
                           "--rounds", "1"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and "no-such-model" in done.stderr and len(done.stderr.strip().splitlines()) == 1
