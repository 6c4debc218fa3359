"""k210/main.py end to end under a real MicroPython, with stand-ins for the MaixPy modules.

The stand-ins (tests/k210_board/) behave like the board where it matters to the script: the
camera delivers QVGA frames only after reset/run, the KPU refuses to run before its outputs are
shaped and hands back the nncase simulator's outputs of each frame as slice-able maps, UART
writes are what the host would read, the watchdog and reset are recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from k210_support import KMODELS, camera_frames, numpy_faces, run_board, sd_card, simulated

from rpi_agent.sources.k210 import parse_line

NAME = KMODELS[0]


def test_every_frame_goes_out_on_uart_as_the_numpy_pipeline_sees_it(tmp_path: Path) -> None:
    uart, summary, _ = run_board(tmp_path, sd=sd_card({"baud": 921600}))
    scores, loc = simulated(NAME)
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
    assert all(parse_line(line) == errors[0] for line in uart)
    assert summary["lcd"]["clears"] and "model file /sd/faceagent.kmodel not found" in "".join(summary["lcd"]["texts"])
    assert summary["machine"]["feeds"] >= 2
    assert summary["kpu"]["loaded"] is None and summary["sensor"]["next"] == 0


def test_missing_sd_card_is_reported(tmp_path: Path) -> None:
    uart, summary, _ = run_board(tmp_path, sd=None, cfg={"error_repeat_ms": 1})
    assert json.loads(uart[0])["error"].startswith("no SD card")
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
