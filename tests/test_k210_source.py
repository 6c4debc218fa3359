"""The K210 serial source over a real pseudo-terminal: valid frames, garbage, a board error, a disconnect, landmarks."""

from __future__ import annotations

import errno
import json
import logging
import os
import queue
import threading
import time
import tty
from pathlib import Path

import pytest

from rpi_agent.config.camera import CameraConfig
from rpi_agent.domain import Detection
from rpi_agent.errors import ConfigError, ProtocolError, SourceError
from rpi_agent.sources import open_source
from rpi_agent.sources.k210 import K210Source, parse_line
from rpi_agent.sources.spec import parse_source

WAIT = 10.0  # seconds to wait for something that normally takes milliseconds


class PtyBoard:
    """The board's end of a serial line: a pty master, reached through a stable symlink."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self.slave = -1
        self.plug()

    def plug(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tmp = self.link.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(self.slave))
        os.replace(tmp, self.link)  # like udev's /dev/serial/by-id link after re-plugging

    def unplug(self) -> None:
        os.close(self.master)
        os.close(self.slave)
        self.link.unlink()

    def send(self, data: bytes) -> None:
        os.write(self.master, data)


def _consume(source: K210Source, out: queue.Queue[tuple[float, list[Detection]]]) -> None:
    for item in source:
        out.put(item)


def _start_reading(source: K210Source) -> tuple[queue.Queue[tuple[float, list[Detection]]], threading.Thread]:
    """A thread iterating ``source`` into a queue, started."""
    out: queue.Queue[tuple[float, list[Detection]]] = queue.Queue()
    reader = threading.Thread(target=_consume, args=(source, out), daemon=True)
    reader.start()
    return out, reader


def _sync(board: PtyBoard, out: queue.Queue[tuple[float, list[Detection]]]) -> None:
    # pyserial flushes input when it opens the port: repeat an empty frame until one gets through.
    for _ in range(int(WAIT / 0.05)):
        board.send(b'{"t": 0, "faces": []}\n')
        try:
            out.get(timeout=0.05)
        except queue.Empty:
            continue
        while True:  # drain the other sync frames
            try:
                out.get(timeout=0.2)
            except queue.Empty:
                return
    pytest.fail("the source never read from the pseudo-terminal")


def _next(out: queue.Queue[tuple[float, list[Detection]]]) -> list[Detection]:
    return out.get(timeout=WAIT)[1]


GARBAGE = [
    b"\x00\xff\xfe binary noise\n",
    b"MicroPython v0.6.2 on 2021-01-01; Sipeed_M1 with kendryte-k210\n",
    b'{"t": 5, "faces": [[1, 2, 3]]}\n',
    b'{"t": 6, "faces": [[10, 10, 400, 20, 0.9]]}\n',
    b'{"t": 7, "faces": [[10, 10, 20, 20, 1.5]]}\n',
    b'[1, 2, 3]\n',
    b'{"t": 8}\n',
]


def test_frames_garbage_and_a_disconnect_over_a_pty(tmp_path: Path) -> None:
    board = PtyBoard(tmp_path / "ttyK210")
    states: list[str] = []
    source = K210Source(str(board.link), baud=115200, read_timeout=0.05, retry_initial=0.05, retry_max=0.2,
                        on_state=lambda camera, feature, value: states.append(f"{camera}/{feature}={value}"))
    out, reader = _start_reading(source)
    try:
        _sync(board, out)
        frames_before = source.counters.frames
        board.send(b'{"t": 10, "faces": [[10, 20, 50, 70, 0.93], [100.5, 40, 140, 90.25, 0.7]]}\n')
        assert _next(out) == [Detection((10.0, 20.0, 50.0, 70.0), 0.93), Detection((100.5, 40.0, 140.0, 90.25), 0.7)]
        for line in GARBAGE:
            board.send(line)
        board.send(b'{"t": 11, "error": "model file /sd/faceagent.kmodel not found"}\n')
        board.send(b'{"t": 12, "faces": [[1, 1, ')  # a line arriving in two pieces
        board.send(b'9, 9, 0.61]]}\r\n')
        assert _next(out) == [Detection((1.0, 1.0, 9.0, 9.0), 0.61)]
        assert source.counters.malformed == len(GARBAGE)
        assert source.counters.board_errors == 1
        assert source.counters.frames == frames_before + 2

        board.send(b'{"t": 13, "faces": [[0, 0, 5')  # cut by the disconnect
        board.unplug()
        board.plug()
        _sync(board, out)
        board.send(b'{"t": 14, "faces": [[2, 2, 30, 30, 0.8]]}\n')
        assert _next(out) == [Detection((2.0, 2.0, 30.0, 30.0), 0.8)]
        assert source.counters.reconnects == 1
        assert source.counters.malformed == len(GARBAGE)  # the cut line is dropped, not counted
    finally:
        source.close()
        reader.join(timeout=WAIT)
        board.unplug()
    assert not reader.is_alive()
    assert states[0] == "k210/source=ONLINE" and states[-1] == "k210/source=ENDED"
    assert "k210/source=RETRYING" in states and states.count("k210/source=ONLINE") == 2


def test_close_stops_a_source_whose_port_never_appears(tmp_path: Path) -> None:
    source = K210Source(str(tmp_path / "absent"), read_timeout=0.05, retry_initial=0.05, retry_max=0.1)
    reader = threading.Thread(target=lambda: list(source), daemon=True)
    reader.start()
    reader.join(timeout=0.5)
    assert reader.is_alive()  # still retrying
    source.close()
    source.close()  # idempotent
    reader.join(timeout=WAIT)
    assert not reader.is_alive()
    assert source.counters.frames == 0


def test_a_port_without_permission_is_a_source_error_not_a_retry(tmp_path: Path) -> None:
    serial = pytest.importorskip("serial")
    port = tmp_path / "ttyK210"  # root may open anything: the refusal comes from the opener

    def opener(path: str, baud: int, timeout: float) -> object:
        # What pyserial raises for a device the user may not open (not a PermissionError).
        raise serial.SerialException(errno.EACCES, f"could not open port {path}: [Errno 13] Permission denied")

    source = K210Source(str(port), opener=opener, retry_initial=0.05)
    with pytest.raises(SourceError, match="permission denied"):
        next(iter(source))


def test_frames_carry_the_detections_and_no_pixels(tmp_path: Path) -> None:
    board = PtyBoard(tmp_path / "ttyK210")
    source = K210Source(str(board.link), camera="door", read_timeout=0.05, retry_initial=0.05)
    got = threading.Event()

    def keep_sending() -> None:  # until the source has opened the port and read a line
        while not got.wait(0.05):
            board.send(b'{"t": 1, "faces": [[3, 4, 30, 40, 0.9]]}\n')

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    try:
        frame = next(source.frames())
        got.set()
        sender.join(timeout=WAIT)
        assert frame.camera == "door" and frame.index == 0 and frame.rgb is None
        assert (frame.width, frame.height) == (320, 240)
        assert frame.reported == (Detection((3.0, 4.0, 30.0, 40.0), 0.9),)
    finally:
        got.set()
        source.close()
        board.unplug()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("k210:/dev/ttyUSB0", ("/dev/ttyUSB0", 115200)), ("k210:/dev/ttyACM1?baud=921600", ("/dev/ttyACM1", 921600))],
)
def test_spec_parsing(spec: str, expected: tuple[str, int]) -> None:
    parsed = parse_source(spec)
    assert (parsed.kind, parsed.port, parsed.baud) == ("k210", *expected)
    assert parsed.live and parsed.detects_faces


@pytest.mark.parametrize("spec", ["k210:", "k210:/dev/ttyUSB0?baud=123", "k210:/dev/x?speed=9600"])
def test_bad_specs_are_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError):
        parse_source(spec)


def test_open_source_gives_a_board_its_state_callback_and_retry_settings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = parse_source(f"k210:{tmp_path / 'unplugged'}")
    camera = CameraConfig(name="board", source=spec.text, retry_initial=0.02, retry_max=0.05)
    states: list[tuple[str, str, str]] = []
    source = open_source(spec, camera, on_state=lambda *s: states.append(s))
    assert isinstance(source, K210Source) and source.live
    caplog.set_level(logging.WARNING, logger="rpi_agent.sources.k210")
    worker = threading.Thread(target=lambda: list(source.frames()))
    worker.start()
    time.sleep(0.5)
    source.close()
    worker.join(timeout=5)
    attempts = sum("cannot open" in r.getMessage() for r in caplog.records)
    # The defaults (0.5 s, doubling) would allow two attempts in 0.5 s; 20-50 ms delays allow many.
    assert attempts >= 6
    assert ("board", "source", "RETRYING") in states and states[-1] == ("board", "source", "ENDED")


def test_parse_line_rejects_nan_and_booleans() -> None:
    with pytest.raises(ProtocolError):
        parse_line(b'{"faces": [[NaN, 1, 2, 3, 0.5]]}')
    with pytest.raises(ProtocolError):
        parse_line(b'{"faces": [[true, 1, 2, 3, 0.5]]}')
    assert parse_line(b'{"t": 1, "faces": []}') == []


def _board_error_line(tmp_path: Path, case: str) -> bytes:
    from k210_support import kmodel, kmodel_v4, run_board, sd_card

    sd: dict[str, bytes] | None
    if case == "v5":
        sd = {"faceagent.kmodel": kmodel("slim-320").read_bytes()}
    elif case == "truncated":
        sd = {"faceagent.kmodel": kmodel_v4("slim-320").read_bytes()[:5000]}
    elif case == "no_sd":
        sd = None
    else:
        sd = sd_card()
    omit = ("KPU", "maix") if case == "no_kpu" else ()
    uart, _, _ = run_board(tmp_path, sd=sd, cfg={"error_repeat_ms": 1}, omit=omit)
    return uart[0]


@pytest.mark.parametrize(("case", "cause"), [
    ("v5", "wrong kmodel version"), ("truncated", "truncated kmodel"),
    ("no_kpu", "firmware without KPU support"), ("no_sd", "no SD card"),
])
def test_what_the_board_cannot_fix_is_a_source_error_naming_the_cause(tmp_path: Path, case: str, cause: str) -> None:
    line = _board_error_line(tmp_path / "board", case)  # what main.py really sends in that case
    board = PtyBoard(tmp_path / "ttyK210")
    source = K210Source(str(board.link), read_timeout=0.05, retry_initial=0.05)
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            for _ in source:
                pass
        except SourceError as exc:
            errors.append(exc)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    try:
        for _ in range(int(WAIT / 0.05)):  # pyserial flushes input on open: repeat, as the board does
            if errors or not reader.is_alive():
                break
            board.send(line + b"\n")
            reader.join(timeout=0.05)
    finally:
        source.close()
        reader.join(timeout=WAIT)
        board.unplug()
    assert len(errors) == 1, f"no SourceError for {line!r}"
    message = str(errors[0])
    assert cause in message and str(board.link) in message and "\n" not in message


# Lines with landmarks: parsed into Detection.landmarks, bad ones refused with one logged reason.
EYES_NOSE_MOUTH = [[20, 30], [40, 30], [30, 42], [22, 52], [38, 52]]
GOOD = {"t": 1, "faces": [[10, 20, 50, 70, 0.93], [300, 200, 320, 240, 0.7]],
        "landmarks": [EYES_NOSE_MOUTH, [[305, 210], [315, 210], [310, 222], [306, 232], [321, 233]]]}


def _line(msg: dict) -> bytes:
    return json.dumps(msg).encode()


def test_a_line_with_landmarks_gives_detections_with_five_points_each() -> None:
    faces = parse_line(_line(GOOD))
    assert isinstance(faces, list) and len(faces) == 2
    points = tuple((float(x), float(y)) for x, y in EYES_NOSE_MOUTH)
    assert faces[0] == Detection((10.0, 20.0, 50.0, 70.0), 0.93, points)
    # A face cut by the frame's edge may have a point outside it (here x = 321): kept as sent.
    assert faces[1].landmarks is not None and faces[1].landmarks[4] == (321.0, 233.0)


def test_a_line_without_landmarks_has_none_and_an_empty_frame_needs_none() -> None:
    faces = parse_line(b'{"t": 1, "faces": [[10, 20, 50, 70, 0.93]]}')
    assert isinstance(faces, list) and faces[0].landmarks is None
    assert parse_line(b'{"t": 2, "faces": [], "landmarks": []}') == []


BAD = [
    ({"landmarks": [EYES_NOSE_MOUTH]}, "one entry per face (2), got 1"),
    ({"landmarks": "none"}, "one entry per face (2), got no list"),
    ({"landmarks": [EYES_NOSE_MOUTH, EYES_NOSE_MOUTH[:4]]}, "landmarks of face 1 must be five finite"),
    ({"landmarks": [EYES_NOSE_MOUTH, [[1, 2, 3]] * 5]}, "landmarks of face 1 must be five finite"),
    ({"landmarks": [[[1, None]] * 5, EYES_NOSE_MOUTH]}, "landmarks of face 0 must be five finite"),
    ({"landmarks": [[[1, True]] * 5, EYES_NOSE_MOUTH]}, "landmarks of face 0 must be five finite"),
]


@pytest.mark.parametrize(("change", "reason"), BAD)
def test_bad_landmarks_refuse_the_whole_line(change: dict, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_line(_line({**GOOD, **change}))


def test_non_finite_landmarks_are_refused() -> None:
    text = _line(GOOD).replace(b"[20, 30]", b"[NaN, 30]")  # Python's json reads NaN and Infinity
    with pytest.raises(ProtocolError, match="landmarks of face 0 must be five finite"):
        parse_line(text)
    with pytest.raises(ProtocolError, match="landmarks of face 0"):
        parse_line(_line(GOOD).replace(b"[40, 30]", b"[Infinity, 30]"))


def test_over_a_pty_bad_landmark_lines_are_counted_and_logged_once_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rpi_agent.sources.k210")
    board = PtyBoard(tmp_path / "ttyK210")
    source = K210Source(str(board.link), read_timeout=0.05, retry_initial=0.05)
    out, reader = _start_reading(source)
    try:
        _sync(board, out)
        malformed = source.counters.malformed
        caplog.clear()
        board.send(b"MicroPython v0.6.2 boot noise\n")  # not a frame line: counted, not a warning
        for change, _ in BAD:
            board.send(_line({**GOOD, **change}) + b"\n")
        board.send(_line(GOOD) + b"\n")
        faces = _next(out)
        assert [f.landmarks is not None for f in faces] == [True, True]
        assert source.counters.malformed == malformed + 1 + len(BAD)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == len(BAD), warnings
        for message, (_, reason) in zip(warnings, BAD, strict=True):
            assert "skipped line" in message and reason in message
    finally:
        source.close()
        reader.join(timeout=WAIT)
        board.unplug()
