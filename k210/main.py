# faceagent K210 companion (MaixPy v0.6): camera -> KPU -> faces -> LCD + UART JSON lines.
#
# Copy this file, facedet.py and the kmodel to the SD card (see k210/README.md). Every
# frame sends one line over the UART:
#     {"t": <board ms>, "faces": [[x1, y1, x2, y2, score], ...]}
# with boxes in the 320x240 camera frame's pixels. A problem (no SD card, no model, a
# crash) is sent as {"t": ms, "error": "..."} and shown on the LCD; the loop never hangs
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

CONFIG = {
    "model": "/sd/faceagent.kmodel",  # a path, or a flash offset such as 0x300000
    "kmodel_v4": True,  # V4 needs kpu.set_outputs(); V3 does not
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


class Board:
    """The MaixPy modules the script touches, imported once (and replaceable on a host)."""

    def __init__(self):
        import KPU
        import lcd
        import machine
        import sensor

        self.kpu = KPU
        self.lcd = lcd
        self.machine = machine
        self.sensor = sensor


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
    """Reason why the model cannot be loaded, or None."""
    if not isinstance(path, str):
        return None  # flash offset: kpu.load reports problems itself
    if path.startswith("/sd/"):
        try:
            os.listdir("/sd")
        except OSError:
            return "no SD card: insert one holding %s" % path
    try:
        os.stat(path)
    except OSError:
        return "model file %s not found" % path
    return None


def report_error(board, uart, cfg, message):
    """Show an error on the LCD and the UART; repeat until the watchdog or a reset ends it."""
    if cfg["lcd"]:
        board.lcd.clear(board.lcd.RED)
        board.lcd.draw_string(4, 4, "faceagent error:", board.lcd.WHITE, board.lcd.RED)
        for n in range(0, len(message), 38):
            board.lcd.draw_string(4, 24 + 16 * (n // 38), message[n:n + 38], board.lcd.WHITE, board.lcd.RED)
    if uart is not None:
        send(uart, {"t": ticks(), "error": message})
    else:
        # Before the UART is open the REPL (the USB serial) is the only way out: same format.
        print(json.dumps({"t": ticks(), "error": message}))


def wait_for_model(board, uart, cfg, wdt, message):
    # The board cannot mount a card inserted later: report, then reset once the file shows up.
    while message is not None:
        report_error(board, uart, cfg, message)
        time.sleep_ms(cfg["error_repeat_ms"])
        feed(wdt)
        message = check_model(cfg["model"])
    board.machine.reset()


def setup_camera(board):
    sensor = board.sensor
    sensor.reset()
    sensor.set_pixformat(sensor.RGB565)
    sensor.set_framesize(sensor.QVGA)
    sensor.run(1)


def load_model(board, cfg):
    kpu = board.kpu
    task = kpu.load(cfg["model"])
    if cfg["kmodel_v4"]:
        priors = facedet.Priors(WIDTH, HEIGHT).count
        kpu.set_outputs(task, 0, 2, priors, 1)
        kpu.set_outputs(task, 1, 4, priors, 1)
    return task


def reader(fmap):
    return lambda a, b: fmap[a:b]


def detect_frame(board, task, img, priors, cfg):
    kpu = board.kpu
    scores = kpu.forward(task, img)
    boxes = kpu.get_output(task, 1)
    faces = facedet.detect(reader(scores), reader(boxes), priors, cfg["threshold"], cfg["nms"],
                           cfg["top_k"], 200, cfg["chunk"])
    if hasattr(kpu, "fmap_free"):
        kpu.fmap_free(scores)  # the firmware's own examples free forward()'s map every frame
    return facedet.to_pixels(faces, WIDTH, HEIGHT, 0)


def draw(board, img, faces, fps):
    for f in faces:
        img.draw_rectangle(int(f[0]), int(f[1]), int(f[2] - f[0]), int(f[3] - f[1]), color=GREEN, thickness=2)
    img.draw_string(2, 2, "%d faces %.1f fps" % (len(faces), fps), color=RED, scale=2)
    board.lcd.display(img)


def loop(board, uart, cfg, wdt, task):
    priors = facedet.Priors(WIDTH, HEIGHT)
    fps = 0.0
    last = ticks()
    while True:
        img = board.sensor.snapshot()
        faces = detect_frame(board, task, img, priors, cfg)
        now = ticks()
        send(uart, {"t": now, "faces": [[int(f[0]), int(f[1]), int(f[2]), int(f[3]), f[4]]
                                        for f in faces]})
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
        task = load_model(board, cfg)
        feed(wdt)
        loop(board, uart, cfg, wdt, task)
    except KeyboardInterrupt:
        raise  # the IDE's stop button
    except Exception as exc:  # report whatever stopped the loop, then start afresh
        report_error(board, uart, cfg, "%s: %s" % (type(exc).__name__, exc))
        time.sleep_ms(cfg["error_repeat_ms"])
        board.machine.reset()


if __name__ == "__main__":
    main()
