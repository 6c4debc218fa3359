"""Stand-in for MaixPy's ``fpioa_manager``: records pin assignments."""


class _Fpioa:
    UART1_TX = 18
    UART1_RX = 19


class _Manager:
    fpioa = _Fpioa()

    def __init__(self):
        self.pins = {}

    def register(self, pin, function, force=False):
        self.pins[pin] = function


fm = _Manager()
