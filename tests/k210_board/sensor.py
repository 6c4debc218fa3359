"""Stand-in for MaixPy's ``sensor`` module: frames from photos copied into the file system.

``/frames/count`` holds how many frames there are; frame i is the photo whose KPU outputs are
``/kpu/i.scores`` and ``/kpu/i.loc``. When the frames run out, ``snapshot()`` raises
KeyboardInterrupt, which is what the MaixPy IDE's stop button does to a running script.
"""

import image

RGB565 = 2
GRAYSCALE = 1
QVGA = 8
state = {"reset": False, "pixformat": None, "framesize": None, "running": False, "next": 0, "count": None}


def reset():
    state["reset"] = True


def set_pixformat(fmt):
    state["pixformat"] = fmt


def set_framesize(size):
    state["framesize"] = size


def run(on):
    state["running"] = bool(on)


def snapshot():
    if not (state["reset"] and state["running"]):
        raise RuntimeError("Capture Failed: sensor not reset and running")
    if state["pixformat"] != RGB565 or state["framesize"] != QVGA:
        raise RuntimeError("stand-in camera only delivers RGB565 QVGA")
    if state["count"] is None:
        with open("/frames/count") as fh:
            state["count"] = int(fh.read())
    if state["next"] >= state["count"]:
        raise KeyboardInterrupt
    state["next"] += 1
    return image.Image(state["next"] - 1)
