# ruff: noqa: PLR0917  (mirrors the positional MaixPy API)
"""Stand-in for MaixPy's ``machine`` module: UART lines go to stdout, WDT and reset are recorded.

Every UART write is printed as ``UART <text>``. ``limits["errors"]`` error lines end the run
with KeyboardInterrupt (a board would go on repeating them until reset).
"""

import json

state = {"uart": None, "wdt_timeout": None, "feeds": 0, "errors": 0, "resets": 0}
limits = {"errors": 3}


class BoardReset(BaseException):
    """machine.reset() was called: on a board the script starts again from boot."""


class UART:
    UART1 = 1
    UART2 = 2
    UART3 = 3
    UARTHS = 0

    def __init__(self, uart_id=0, baudrate=115200, bits=8, parity=None, stop=1, timeout=0, read_buf_len=0):
        self.init(baudrate, bits, parity, stop)
        state["uart"] = {"id": uart_id, "baud": baudrate}

    @classmethod
    def repl_uart(cls):
        uart = cls(cls.UARTHS)
        return uart

    def init(self, baudrate=115200, bits=8, parity=None, stop=1, read_buf_len=0, timeout=0):
        if bits != 8 or stop != 1:
            raise ValueError("stand-in UART only supports 8N1")
        state["uart"] = {"id": 0, "baud": baudrate}

    def write(self, data):
        from _kpu_sim import heap_probe

        heap_probe()  # the frame's faces and its JSON line are live here (error lines: no frame yet)
        if isinstance(data, bytes):
            data = data.decode()
        for line in data.split("\n"):
            if line:
                print("UART " + line)
                if "error" in json.loads(line):
                    state["errors"] += 1
                    if state["errors"] >= limits["errors"]:
                        raise KeyboardInterrupt
        return len(data)


class WDT:
    def __init__(self, id=0, timeout=0, callback=None, context=None):
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        state["wdt_timeout"] = timeout

    def feed(self):
        state["feeds"] += 1


def reset():
    state["resets"] += 1
    raise BoardReset()
