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
from k210_support import BOARD_STANDINS, K210_DIR, KMODELS, camera_frames, kmodel, numpy_faces, simulated

from rpi_agent.k210.micropython import run_micropython
from rpi_agent.sources.k210 import parse_line

NAME = KMODELS[0]
WRAPPER = """
import json, sys
import machine, lcd, sensor, KPU
import main
cfg = dict(main.CONFIG)
cfg.update(json.loads(open("/test/cfg.json").read()))
try:
    main.main(None, cfg)
    outcome = "returned"
except KeyboardInterrupt:
    outcome = "stopped"
except machine.BoardReset:
    outcome = "reset"
print("SUMMARY " + json.dumps({"outcome": outcome, "machine": machine.state, "lcd": lcd.state,
                               "kpu": KPU.state, "sensor": sensor.state}))
"""


def _board_files(tmp_path: Path, *, sd: dict[str, bytes] | None, fail_at: int | None = None) -> dict[str, Path]:
    files = {f"/lib/{p.name}": p for p in BOARD_STANDINS.glob("*.py")}
    files["/lib/main.py"] = K210_DIR / "main.py"
    files["/lib/facedet.py"] = K210_DIR / "facedet.py"
    scores, loc = simulated(NAME)
    (tmp_path / "count").write_text(str(scores.shape[0]))
    files["/frames/count"] = tmp_path / "count"
    for i in range(scores.shape[0]):
        for kind, arr in (("scores", scores[i]), ("loc", loc[i])):
            path = tmp_path / f"{i}.{kind}"
            path.write_bytes(np.ascontiguousarray(arr, dtype="<f4").tobytes())
            files[f"/kpu/{i}.{kind}"] = path
    if fail_at is not None:
        (tmp_path / "fail_at").write_text(str(fail_at))
        files["/kpu/fail_at"] = tmp_path / "fail_at"
    for name, data in (sd or {}).items():
        path = tmp_path / f"sd-{name}"
        path.write_bytes(data)
        files[f"/sd/{name}"] = path
    return files


def _run(tmp_path: Path, *, sd: dict[str, bytes] | None, cfg: dict[str, object] | None = None,
         fail_at: int | None = None) -> tuple[list[bytes], dict, list[bytes]]:
    files = _board_files(tmp_path, sd=sd, fail_at=fail_at)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg or {}))
    files["/test/cfg.json"] = tmp_path / "cfg.json"
    out = run_micropython(WRAPPER, files=files, sys_path=["/lib"])
    uart = [line[5:].encode() for line in out.splitlines() if line.startswith("UART ")]
    summary = json.loads(next(line[8:] for line in out.splitlines() if line.startswith("SUMMARY ")))
    repl = [line.encode() for line in out.splitlines() if line.startswith("{")]
    return uart, summary, repl


def _sd_card(config: dict[str, object] | None = None) -> dict[str, bytes]:
    sd = {"faceagent.kmodel": kmodel(NAME).read_bytes()}
    if config is not None:
        sd["faceagent.json"] = json.dumps(config).encode()
    return sd


def test_every_frame_goes_out_on_uart_as_the_numpy_pipeline_sees_it(tmp_path: Path) -> None:
    uart, summary, _ = _run(tmp_path, sd=_sd_card({"baud": 921600}))
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
    assert machine["wdt_timeout"] == 5000 and machine["feeds"] == frames
    assert lcd["displayed"] == frames and lcd["rects"] == sent
    assert kpu["forwards"] == frames and kpu["freed"] == frames and kpu["loaded"] == "/sd/faceagent.kmodel"


def test_missing_model_is_reported_on_lcd_and_uart_while_the_watchdog_is_fed(tmp_path: Path) -> None:
    uart, summary, _ = _run(tmp_path, sd={"readme.txt": b"no model here"}, cfg={"error_repeat_ms": 1})
    assert summary["outcome"] == "stopped"  # the stand-in UART stops the run after 3 error lines
    errors = [json.loads(line)["error"] for line in uart]
    assert errors == ["model file /sd/faceagent.kmodel not found"] * 3
    assert all(parse_line(line) == errors[0] for line in uart)
    assert summary["lcd"]["clears"] and "model file /sd/faceagent.kmodel not found" in "".join(summary["lcd"]["texts"])
    assert summary["machine"]["feeds"] >= 2
    assert summary["kpu"]["loaded"] is None and summary["sensor"]["next"] == 0


def test_missing_sd_card_is_reported(tmp_path: Path) -> None:
    uart, summary, _ = _run(tmp_path, sd=None, cfg={"error_repeat_ms": 1})
    assert json.loads(uart[0])["error"].startswith("no SD card")
    assert summary["outcome"] == "stopped"


def test_a_crash_in_the_loop_is_reported_then_the_board_resets(tmp_path: Path) -> None:
    uart, summary, _ = _run(tmp_path, sd=_sd_card(), cfg={"error_repeat_ms": 1}, fail_at=3)
    assert summary["outcome"] == "reset" and summary["machine"]["resets"] == 1
    assert [("faces" in json.loads(line)) for line in uart] == [True, True, True, False]
    assert json.loads(uart[-1])["error"] == "OSError: KPU timeout"


def test_a_bad_config_file_is_reported_not_ignored(tmp_path: Path) -> None:
    sd = _sd_card()
    sd["faceagent.json"] = b'{"baud": 115200, "treshold": 0.5}'
    uart, summary, repl = _run(tmp_path, sd=sd, cfg={"error_repeat_ms": 1})
    assert summary["outcome"] == "reset"
    # The UART is not open yet when the config fails: the message goes to the LCD and the REPL
    # (the USB serial), in the same JSON form.
    assert uart == []
    assert [parse_line(line) for line in repl] == ["ValueError: config /sd/faceagent.json: unknown key treshold"]
    assert "unknown key treshold" in "".join(summary["lcd"]["texts"])
