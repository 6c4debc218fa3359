"""k210/main.py end to end under a real MicroPython, with stand-ins for the MaixPy modules.

The stand-ins (tests/k210_board/) behave like the board where it matters to the script: the
camera delivers QVGA frames only after reset/run, the KPU refuses what MaixPy refuses and runs
nothing before its outputs are shaped, then hands back the V4 kmodel's outputs of each frame as
computed by nncase v0.2's runtime (``ncc infer``) as slice-able maps; UART writes are what the
host would read, the watchdog and reset are recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from k210_support import (
    KMODELS,
    LANDMARK_KMODELS,
    camera_frames,
    kmodel,
    kmodel_v4,
    numpy_faces,
    numpy_faces_landmarks,
    run_board,
    sd_card,
    simulated_v4,
    simulated_v4_outputs,
)

from rpi_agent.sources.k210 import FATAL_BOARD_ERRORS, board_error_code, parse_line

NAME = KMODELS[0]


def test_every_frame_goes_out_on_uart_as_the_numpy_pipeline_sees_it(tmp_path: Path) -> None:
    uart, summary, _ = run_board(tmp_path, sd=sd_card({"baud": 921600}))
    scores, loc = simulated_v4(NAME)
    frames = camera_frames().shape[0]
    assert summary["outcome"] == "stopped"  # the stand-in camera ran out of frames
    assert len(uart) == frames
    sent = 0
    for i, line in enumerate(uart):
        msg = json.loads(line)
        assert isinstance(msg["t"], int)
        faces = parse_line(line)  # what the Pi's serial source accepts
        assert isinstance(faces, list)
        boxes, best = numpy_faces(scores[i], loc[i], threshold=0.6, top_k=50)
        boxes = np.clip(boxes, 0, [320, 240, 320, 240])
        assert len(faces) == len(best), f"frame {i}"
        for face, box, score in zip(faces, boxes, best, strict=True):
            assert np.abs(np.array(face.box) - box).max() <= 0.5 + 1e-4, f"frame {i}"
            assert face.score == pytest.approx(float(score), abs=5e-5 + 1e-6)
        sent += len(faces)
    assert sent > 300
    machine, lcd, kpu = summary["machine"], summary["lcd"], summary["kpu"]
    assert machine["uart"]["baud"] == 921600  # from /sd/faceagent.json
    assert machine["wdt_timeout"] == 5000 and machine["feeds"] == frames + 2  # + camera and model set-up
    assert lcd["displayed"] == frames and lcd["rects"] == sent
    assert kpu["forwards"] == frames and kpu["freed"] == frames and kpu["loaded"] == "/sd/faceagent.kmodel"


def test_missing_model_is_reported_on_lcd_and_uart_while_the_watchdog_is_fed(tmp_path: Path) -> None:
    uart, summary, _ = run_board(tmp_path, sd={"readme.txt": b"no model here"}, cfg={"error_repeat_ms": 1})
    assert summary["outcome"] == "stopped"  # the stand-in UART stops the run after 3 error lines
    errors = [json.loads(line)["error"] for line in uart]
    assert errors == ["model file /sd/faceagent.kmodel not found"] * 3
    assert {json.loads(line)["code"] for line in uart} == {"no_model"}
    assert all(parse_line(line) == errors[0] for line in uart)
    assert summary["lcd"]["clears"] and "model file /sd/faceagent.kmodel not found" in "".join(summary["lcd"]["texts"])
    assert summary["machine"]["feeds"] >= 2
    assert summary["kpu"]["loaded"] is None and summary["sensor"]["next"] == 0


def test_missing_sd_card_is_reported(tmp_path: Path) -> None:
    uart, summary, _ = run_board(tmp_path, sd=None, cfg={"error_repeat_ms": 1})
    assert json.loads(uart[0])["error"].startswith("no SD card")
    assert board_error_code(uart[0]) == "no_sd" and "no_sd" in FATAL_BOARD_ERRORS
    assert summary["outcome"] == "stopped"


def test_a_crash_in_the_loop_is_reported_then_the_board_resets(tmp_path: Path) -> None:
    uart, summary, _ = run_board(tmp_path, sd=sd_card(), cfg={"error_repeat_ms": 1}, fail_at=3)
    assert summary["outcome"] == "reset" and summary["machine"]["resets"] == 1
    assert [("faces" in json.loads(line)) for line in uart] == [True, True, True, False]
    assert json.loads(uart[-1])["error"] == "OSError: KPU timeout"


def test_a_bad_config_file_is_reported_not_ignored(tmp_path: Path) -> None:
    sd = sd_card()
    sd["faceagent.json"] = b'{"baud": 115200, "treshold": 0.5}'
    uart, summary, repl = run_board(tmp_path, sd=sd, cfg={"error_repeat_ms": 1})
    assert summary["outcome"] == "reset"
    # The UART is not open yet when the config fails: the message goes to the LCD and the REPL
    # (the USB serial), in the same JSON form.
    assert uart == []
    assert [parse_line(line) for line in repl] == ["ValueError: config /sd/faceagent.json: unknown key treshold"]
    assert "unknown key treshold" in "".join(summary["lcd"]["texts"])


def _one_error(tmp_path: Path, sd: dict[str, bytes] | None, **kwargs: object) -> tuple[str, str, dict]:
    uart, summary, _ = run_board(tmp_path, sd=sd, cfg={"error_repeat_ms": 1}, **kwargs)  # type: ignore[arg-type]
    assert summary["outcome"] == "stopped", summary  # three error lines, then the stand-in UART stops it
    messages = {(json.loads(line)["code"], json.loads(line)["error"]) for line in uart}
    assert len(messages) == 1, messages  # one cause, one line, repeated
    code, message = messages.pop()
    assert message[:38] in summary["lcd"]["texts"]  # the LCD shows it too, in 38-character lines
    assert summary["kpu"]["forwards"] == 0
    return code, message, summary


def test_a_v5_kmodel_is_refused_naming_firmware_and_version(tmp_path: Path) -> None:
    code, message, summary = _one_error(tmp_path, {"faceagent.kmodel": kmodel(NAME).read_bytes()})
    assert code == "kmodel_version" and code in FATAL_BOARD_ERRORS
    assert "kmodel V5" in message and "loads V3/V4 only" in message and "firmware " in message
    assert summary["kpu"]["loaded"] is None  # refused before kpu.load


def test_a_truncated_v4_kmodel_is_refused(tmp_path: Path) -> None:
    data = kmodel_v4(NAME).read_bytes()
    code, message, _ = _one_error(tmp_path, {"faceagent.kmodel": data[: len(data) // 2]})
    assert code == "kmodel_truncated" and f"{len(data) // 2} of {len(data)} bytes" in message


def test_a_firmware_without_kpu_is_reported(tmp_path: Path) -> None:
    code, message, _ = _one_error(tmp_path, sd_card(), omit=("KPU", "maix"))
    assert code == "no_kpu" and "has no KPU module" in message


def test_canmv_maix_kpu_loads_the_v4_file_then_says_why_it_cannot_read_it(tmp_path: Path) -> None:
    # Released CanMV's maix.KPU hands out output 0 only, as one list of every float: main.py
    # loads the model through it, then stops with one line instead of running out of heap.
    code, message, summary = _one_error(tmp_path, sd_card(), omit=("KPU",))
    assert code == "kpu_api" and "CanMV maix.KPU returns only output 0" in message
    assert summary["kpu"]["loaded"] == "/sd/faceagent.kmodel"


def test_one_frame_stays_under_256_kb_of_heap(tmp_path: Path) -> None:
    # gc.mem_alloc() at every box read and UART write, minus its value when forward() handed
    # out the frame: this WebAssembly port frees nothing while a script runs, so the figure is
    # everything a frame allocates (the upper bound of its high-water mark), worst frame of 24.
    _, summary, _ = run_board(tmp_path, sd=sd_card())
    kpu = summary["kpu"]
    assert kpu["forwards"] == camera_frames().shape[0] and kpu["heap_samples"] > 100
    print(f"heap high-water (all a frame allocates) {kpu['heap_peak']} bytes, {kpu['heap_samples']} samples")
    assert 20 * 1024 < kpu["heap_peak"] < 256 * 1024


def test_a_landmark_model_sends_and_draws_five_points_per_face(tmp_path: Path) -> None:
    # slim-landmark-320's V4 file (three outputs: boxes, scores, landmarks in ncc's order, read
    # from its header) and its outputs from nncase v0.2's runtime.
    name = LANDMARK_KMODELS[0]
    uart, summary, _ = run_board(tmp_path, sd=sd_card(name=name), name=name)
    out = simulated_v4_outputs(name)
    assert len(uart) == camera_frames().shape[0]
    sent = 0
    for i, line in enumerate(uart):
        faces = parse_line(line)  # what the Pi's serial source accepts
        assert isinstance(faces, list)
        boxes, best, points = numpy_faces_landmarks(out, i, threshold=0.6, top_k=50)
        assert len(faces) == len(best), f"frame {i}"
        sent_points = json.loads(line).get("landmarks", [])
        assert all(isinstance(v, int) for face in sent_points for p in face for v in p)  # rounded to pixels
        for face, box, score, pts in zip(faces, np.clip(boxes, 0, [320, 240, 320, 240]), best, points, strict=True):
            assert np.abs(np.array(face.box) - box).max() <= 0.5 + 1e-4, f"frame {i}"
            assert face.score == pytest.approx(float(score), abs=5e-5 + 1e-6)
            assert face.landmarks is not None
            assert np.abs(np.array(face.landmarks) - pts).max() <= 0.5 + 1e-3, f"frame {i}"
        sent += len(faces)
    assert sent > 200
    lcd, kpu = summary["lcd"], summary["kpu"]
    assert lcd["rects"] == sent and len(lcd["circles"]) == 5 * sent
    print(f"landmark model: heap high-water (all a frame allocates) {kpu['heap_peak']} bytes")
    # Up to 50 faces x 5 points read, decoded, scaled and sent: ~56 KB more than boxes alone
    # (232 KB); all of it garbage the board's GC frees, this port's figure frees nothing.
    assert 20 * 1024 < kpu["heap_peak"] < 320 * 1024


def test_a_landmark_kmodel_at_a_flash_offset_is_read_in_ncc_s_output_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # At a flash offset there is no header to read: FLASH_ORDER must be what ncc writes.
    import importlib

    from k210_support import K210_DIR

    monkeypatch.syspath_prepend(str(K210_DIR))
    kpu_api = importlib.import_module("kpu_api")
    for name, landmarks in ((NAME, False), (LANDMARK_KMODELS[0], True)):
        from_file = kpu_api.model_layout(str(kmodel_v4(name)))
        at_offset = kpu_api.model_layout(0x300000, 400000, landmarks)
        keys = ("boxes", "scores", "landmarks", "family", "priors")
        assert {k: from_file[k] for k in keys} == {k: at_offset[k] for k in keys}, name
    assert from_file["family"] == "ssd-landmark" and from_file["landmarks"] == 2
