"""`faceagent detect` as users run it: a real subprocess, real photos, the real INT8 model."""

import json
import shutil
import subprocess
import sys

import pytest

from rpi_agent.imaging.files import load_rgb


def faceagent(*args, check=False):
    return subprocess.run([sys.executable, "-m", "rpi_agent", *args], capture_output=True, text=True, check=check)


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory, faces_dir):
    folder = tmp_path_factory.mktemp("mixed")
    for name in ("2.jpg", "9.jpg"):
        shutil.copy(faces_dir / name, folder / name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (folder / "empty.png").write_bytes(b"")
    return folder


def test_json_lines_in_original_pixels(built_model, faces_dir):
    proc = faceagent("detect", str(faces_dir / "2.jpg"), str(faces_dir / "9.jpg"), "--json",
                     "--model", str(built_model("RFB-320")))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [rec["image"] for rec in lines] == [str(faces_dir / "2.jpg"), str(faces_dir / "9.jpg")]
    first = lines[0]
    h, w = load_rgb(faces_dir / "2.jpg").shape[:2]
    assert (first["width"], first["height"]) == (w, h)
    assert len(first["faces"]) == 4
    assert set(first["ms"]) == {"preprocess", "inference", "decode"}
    for face in first["faces"]:
        x1, y1, x2, y2 = face["box"]
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and 0.6 <= face["score"] <= 1.0


def test_folder_keeps_going_past_bad_files_and_reports_them(built_model, mixed_folder, tmp_path):
    out = tmp_path / "annotated"
    proc = faceagent("detect", str(mixed_folder), "--model", str(built_model("RFB-320")), "--annotate", str(out))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "2 of 4 image(s) could not be read" in proc.stderr
    assert "broken.jpg" in proc.stderr and "empty.png: empty file" in proc.stderr
    assert proc.stdout.count("face(s)") == 2
    assert sorted(p.name for p in out.iterdir()) == ["2.jpg", "9.jpg"]
    assert load_rgb(out / "2.jpg").shape == load_rgb(mixed_folder / "2.jpg").shape


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "no-such-variant"], "is not built"),
        (["--model", "/etc/hostname"], "not a TFLite model"),
        (["--model", "/nonexistent/m.tflite"], "model file not found"),
    ],
)
def test_bad_model_is_one_line_and_exit_1(faces_dir, args, message):
    proc = faceagent("detect", str(faces_dir / "2.jpg"), *args)
    assert proc.returncode == 1
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if ln.startswith("faceagent:")]) == 1


def test_bad_arguments_exit_2(faces_dir, tmp_path):
    proc = faceagent("detect", str(faces_dir / "2.jpg"), "--threshold", "1.5")
    assert proc.returncode == 2 and "must be in [0, 1)" in proc.stderr
    proc = faceagent("detect", str(tmp_path), "--model", "/nonexistent.tflite")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "model,message",
    [
        ("RFB-320:fp16", "model 'RFB-320:fp16': unknown precision 'fp16'"),
        ("RFB-320:", "unknown precision ''"),
        ("a:b:c", "unknown precision 'b:c'"),
        ("", "expected NAME, NAME:fp32 or a path"),
        ("bad name", "not a variant name"),
        ("x" * 5000, "File name too long"),
    ],
)
def test_every_malformed_model_is_one_line_and_exit_2(faces_dir, model, message):
    proc = faceagent("detect", str(faces_dir / "2.jpg"), "--model", model)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("faceagent detect: error: argument --model: ") and message in proc.stderr


def test_model_forms_of_the_other_commands_are_checked_by_argparse(faces_dir):
    for args in (["eval", "agreement", "--model", "RFB-320:fp16"], ["eval", "agreement", "--reference", ":"],
                 ["eval", "widerface", "--model", "RFB-320:int4"], ["bench", "--model", "RFB-320:fp16"]):
        proc = faceagent(*args)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, (args, proc.stderr)
        assert "argument --" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_paths_do_not_stop_the_batch(built_model, faces_dir, tmp_path):
    proc = faceagent("detect", str(tmp_path / "gone.jpg"), str(faces_dir / "2.jpg"), str(tmp_path / ("x" * 300)),
                     "--model", str(built_model("RFB-320")))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "2 of 3 image(s) could not be read" in proc.stderr and "2.jpg: 4 face(s)" in proc.stdout


def test_table_is_one_row_per_image_in_natural_order(built_model, faces_dir):
    model = str(built_model("RFB-320"))
    proc = faceagent("detect", str(faces_dir), "--table", "--model", model)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["image", "faces", "ms"]
    rows = [line.split() for line in lines[1:-1]]
    photos = sorted(faces_dir.glob("*.jpg"), key=lambda p: int(p.stem))
    assert [r[0] for r in rows] == [p.name for p in photos]
    per_image = {json.loads(x)["image"]: len(json.loads(x)["faces"])
                 for x in faceagent("detect", str(faces_dir), "--json", "--model", model).stdout.splitlines()}
    assert [int(r[1]) for r in rows] == [per_image[str(p)] for p in photos]
    assert all(float(r[2]) > 0 for r in rows)
    assert lines[-1].startswith(f"{len(photos)} image(s), {sum(per_image.values())} face(s), median ")
    assert faceagent("detect", str(faces_dir), "--table", "--json").returncode == 2
