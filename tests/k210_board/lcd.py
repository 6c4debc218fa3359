"""Stand-in for MaixPy's ``lcd`` module: records what would be shown."""

BLACK = 0x0000
WHITE = 0xFFFF
RED = 0xF800
GREEN = 0x07E0
state = {"init": 0, "displayed": 0, "rects": 0, "circles": [], "texts": [], "clears": []}


def init(*args, **kwargs):
    state["init"] += 1


def clear(color=BLACK):
    state["clears"].append(color)


def draw_string(x, y, text, fg=WHITE, bg=BLACK):
    state["texts"].append(text)


def display(img, **kwargs):
    if not state["init"]:
        raise RuntimeError("lcd not initialised")
    state["displayed"] += 1
    for d in img.draws:
        if d[0] == "rect":
            state["rects"] += 1
        elif d[0] == "circle":
            state["circles"].append([d[1], d[2]])
