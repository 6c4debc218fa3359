# ruff: noqa: PLR0917  (mirrors the positional MaixPy API)
"""Stand-in for MaixPy's ``image`` module: a camera frame that records what is drawn on it.

Runs under MicroPython (the host tests run the board script there) and CPython.
"""


class Image:
    """A 320x240 RGB565 frame from the stand-in sensor; ``key`` names the photo it shows."""

    def __init__(self, key, width=320, height=240):
        self.key = key
        self._width = width
        self._height = height
        self.draws = []
        self.drawn = False

    def width(self):
        return self._width

    def height(self):
        return self._height

    def draw_rectangle(self, x, y, w, h, color=(255, 255, 255), thickness=1, fill=False):
        if w < 0 or h < 0:
            raise ValueError("negative rectangle size")
        self.drawn = True
        self.draws.append(["rect", x, y, w, h])
        return self

    def draw_circle(self, x, y, radius, color=(255, 255, 255), thickness=1, fill=False):
        self.drawn = True
        self.draws.append(["circle", x, y, radius])
        return self

    def draw_string(self, x, y, text, color=(255, 255, 255), scale=1):
        self.drawn = True
        self.draws.append(["text", x, y, text])
        return self

    def pix_to_ai(self):
        return None
