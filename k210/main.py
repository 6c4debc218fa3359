# faceagent K210 companion (MaixPy v0.6 / CanMV): camera -> KPU -> faces -> LCD + UART JSON lines.
#
# Copy this file, facedet.py, kpu_api.py and the kmodel V4 to the SD card (see k210/README.md). Every
# frame sends one line over the UART:
#     {"t": <board ms>, "faces": [[x1, y1, x2, y2, score], ...]}
# with boxes in the 320x240 camera frame's pixels; a landmark model (slim/RFB-landmark) adds
#     "landmarks": [[[x, y] x 5], ...]
# one entry per face in the same order (eyes, nose tip, mouth corners), also in frame pixels. A problem (no SD card, no model, a
# crash) is sent as {"t": ms, "error": "...", "code": "..."} and shown on the LCD; the loop never hangs
# silently: a watchdog resets the board if a frame takes longer than `wdt_ms`.
#
# Written for MicroPython 1.11 (MaixPy): no f-strings, no annotations.

import gc
import json
import os
import sys
import time

for _folder in ("/sd", "/flash"):  # facedet.py sits beside this file on the card or in flash
    if _folder not in sys.path:
        sys.path.append(_folder)

import facedet  # noqa: E402
import kpu_api  # noqa: E402

CONFIG = {
    "model": "/sd/faceagent.kmodel",  # a path, or a flash offset such as 0x300000
    "model_size": 0,  # bytes at a flash offset (CanMV's load_kmodel needs it; 0: read from the header)
    "landmarks": False,  # a kmodel at a flash offset is a landmark model (a file's header says so itself)
    "threshold": 0.6,
    "nms": 0.3,
    "top_k": 50,
    "chunk": 256,  # priors read from the KPU output per step
    "uart": "repl",  # "repl": the USB serial (/dev/ttyUSB0 on the host); "pins": UART1 on tx/rx
    "tx": 10,
    "rx": 11,
    "baud": 115200,
    "wdt_ms": 5000,  # 0 disables the watchdog
    "lcd": True,
    "error_repeat_ms": 2000,
    "config_file": "/sd/faceagent.json",
}
WIDTH = 320
HEIGHT = 240
RED = (255, 0, 0)
GREEN = (0, 255, 0)
YELLOW = (255, 255, 0)


class Board:
    """The firmware modules the script touches, imported once (and replaceable on a host)."""

    def __init__(self):
        import lcd
        import machine
        import sensor

        self.lcd = lcd
        self.machine = machine
        self.sensor = sensor
        self.kpu = find_kpu()


def find_kpu():
    """The firmware's KPU API: MaixPy's `KPU` module, else CanMV's `maix.KPU` class, else None."""
    try:
        import KPU  # MaixPy v0.6.x: load / set_outputs / forward / get_output / fmap_free

        if hasattr(KPU, "forward"):
            return kpu_api.MaixPyKPU(KPU)
    except ImportError:
        pass
    try:
        from maix import KPU as CanMV  # CanMV: kpu = KPU(); kpu.load_kmodel(...); kpu.run_with_output(img)

        return kpu_api.CanMVKPU(CanMV)
    except ImportError:
        return None


def ticks():
    return time.ticks_ms()


def load_config(cfg):
    """Overlay /sd/faceagent.json (if present) on the defaults; a bad file is an error."""
    path = cfg["config_file"]
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError:
        return cfg
    try:
        extra = json.loads(text)
    except ValueError:
        raise ValueError("config %s is not valid JSON" % path)
    if not isinstance(extra, dict):
        raise ValueError("config %s must be a JSON object" % path)
    for key in extra:
        if key not in cfg:
            raise ValueError("config %s: unknown key %s" % (path, key))
        cfg[key] = extra[key]
    return cfg


def open_uart(board, cfg):
    machine = board.machine
    if cfg["uart"] == "repl":
        uart = machine.UART.repl_uart()
        uart.init(cfg["baud"], 8, None, 1, read_buf_len=1024)
        return uart
    from fpioa_manager import fm

    fm.register(cfg["tx"], fm.fpioa.UART1_TX, force=True)
    fm.register(cfg["rx"], fm.fpioa.UART1_RX, force=True)
    return machine.UART(machine.UART.UART1, cfg["baud"], 8, None, 1, timeout=1000, read_buf_len=1024)


def send(uart, obj):
    uart.write(json.dumps(obj) + "\n")


def check_model(path):
    """(code, reason) why the model cannot be used, or None."""
    if not isinstance(path, str):
        return None  # flash offset: the loader reports problems itself
    if path.startswith("/sd/"):
        try:
            os.listdir("/sd")
        except OSError:
            return ("no_sd", "no SD card: insert one holding %s" % path)
    try:
        os.stat(path)
    except OSError:
        return ("no_model", "model file %s not found" % path)
    return kpu_api.check_kmodel(path, kpu_api.firmware_name())


def report_error(board, uart, cfg, message, code="error"):
    """Show an error on the LCD and the UART; repeat until the watchdog or a reset ends it."""
    if cfg["lcd"]:
        board.lcd.clear(board.lcd.RED)
        board.lcd.draw_string(4, 4, "faceagent error:", board.lcd.WHITE, board.lcd.RED)
        for n in range(0, len(message), 38):
            board.lcd.draw_string(4, 24 + 16 * (n // 38), message[n:n + 38], board.lcd.WHITE, board.lcd.RED)
    line = {"t": ticks(), "error": message, "code": code}
    if uart is not None:
        send(uart, line)
    else:
        # Before the UART is open the REPL (the USB serial) is the only way out: same format.
        print(json.dumps(line))


def wait_for_model(board, uart, cfg, wdt, problem):
    # The board cannot mount a card inserted later: report, then reset once the file is usable.
    while problem is not None:
        report_error(board, uart, cfg, problem[1], problem[0])
        time.sleep_ms(cfg["error_repeat_ms"])
        feed(wdt)
        problem = check_model(cfg["model"])
    board.machine.reset()


def setup_camera(board):
    sensor = board.sensor
    sensor.reset()
    sensor.set_pixformat(sensor.RGB565)
    sensor.set_framesize(sensor.QVGA)
    sensor.run(1)


def load_model(board, cfg):
    """The loaded model, or raises kpu_api.BoardProblem naming the firmware and kmodel version."""
    if board.kpu is None:
        raise kpu_api.BoardProblem("no_kpu", "firmware %s has no KPU module (neither MaixPy's KPU nor "
                                   "CanMV's maix.KPU): flash a build with KPU support" % kpu_api.firmware_name())
    model = cfg["model"]
    layout = kpu_api.model_layout(model, cfg["model_size"], cfg["landmarks"])
    board.kpu.load(model, layout)
    return layout


def detect_frame(board, layout, img, priors, cfg):
    read_scores, read_boxes, score_at, read_landmarks = board.kpu.run(img)
    faces = facedet.detect(read_scores, read_boxes, priors, cfg["threshold"], cfg["nms"],
                           cfg["top_k"], 200, cfg["chunk"], score_at, read_landmarks)
    board.kpu.free()
    return facedet.to_pixels(faces, WIDTH, HEIGHT, 0)


def frame_line(now, faces):
    """The UART message of one frame: boxes (and landmarks) rounded to pixels."""
    msg = {"t": now, "faces": [[int(f[0]), int(f[1]), int(f[2]), int(f[3]), f[4]] for f in faces]}
    if faces and len(faces[0]) > 5:
        msg["landmarks"] = [[[int(p[0]), int(p[1])] for p in f[5]] for f in faces]
    return msg


def draw(board, img, faces, fps):
    for f in faces:
        img.draw_rectangle(int(f[0]), int(f[1]), int(f[2] - f[0]), int(f[3] - f[1]), color=GREEN, thickness=2)
        if len(f) > 5:
            for p in f[5]:
                img.draw_circle(int(p[0]), int(p[1]), 2, color=YELLOW, thickness=1, fill=True)
    img.draw_string(2, 2, "%d faces %.1f fps" % (len(faces), fps), color=RED, scale=2)
    board.lcd.display(img)


def loop(board, uart, cfg, wdt, layout):
    priors = facedet.priors_for(layout["family"], WIDTH, HEIGHT)
    fps = 0.0
    last = ticks()
    while True:
        img = board.sensor.snapshot()
        faces = detect_frame(board, layout, img, priors, cfg)
        now = ticks()
        send(uart, frame_line(now, faces))
        dt = time.ticks_diff(now, last)
        last = now
        if dt > 0:
            fps = 1000.0 / dt if fps == 0.0 else 0.8 * fps + 200.0 / dt  # smoothed: 0.2 of 1000/dt
        if cfg["lcd"]:
            draw(board, img, faces, fps)
        feed(wdt)
        gc.collect()


def feed(wdt):
    if wdt is not None:
        wdt.feed()


def start_watchdog(board, cfg):
    if not cfg["wdt_ms"]:
        return None
    return board.machine.WDT(id=0, timeout=cfg["wdt_ms"])


def main(board=None, cfg=None):
    board = board or Board()
    cfg = cfg or dict(CONFIG)
    uart = None
    wdt = None
    try:
        if cfg["lcd"]:
            board.lcd.init()
        cfg = load_config(cfg)
        uart = open_uart(board, cfg)
        wdt = start_watchdog(board, cfg)
        problem = check_model(cfg["model"])
        if problem is not None:
            wait_for_model(board, uart, cfg, wdt, problem)
            return
        setup_camera(board)
        feed(wdt)  # each start-up step stays well inside the watchdog timeout
        layout = load_model(board, cfg)
        feed(wdt)
        loop(board, uart, cfg, wdt, layout)
    except KeyboardInterrupt:
        raise  # the IDE's stop button
    except kpu_api.BoardProblem as exc:  # nothing a reset fixes: report until someone acts
        wait_for_fix(board, uart, cfg, wdt, exc)
    except Exception as exc:  # report whatever stopped the loop, then start afresh
        report_error(board, uart, cfg, "%s: %s" % (type(exc).__name__, exc))
        time.sleep_ms(cfg["error_repeat_ms"])
        board.machine.reset()


def wait_for_fix(board, uart, cfg, wdt, problem):
    while True:
        report_error(board, uart, cfg, problem.message, problem.code)
        time.sleep_ms(cfg["error_repeat_ms"])
        feed(wdt)


if __name__ == "__main__":
    main()
