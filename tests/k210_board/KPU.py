# ruff: noqa: UP031  (MicroPython 1.11 on the board has no f-strings; keep its dialect)
"""Stand-in for MaixPy's ``KPU`` module, fed with nncase-simulated outputs of each frame.

``load`` checks the kmodel file exists and is not empty; like MaixPy with a V4 kmodel,
``forward`` refuses to run until ``set_outputs`` gave every output a shape whose size matches.
Frame i's outputs are ``/kpu/i.scores`` and ``/kpu/i.loc`` (float32); ``/kpu/fail_at`` makes
``forward`` raise OSError at that frame. Output maps slice into tuples of floats, as on a board.
"""

import array

state = {"loaded": None, "forwards": 0, "freed": 0, "fail_at": None}


class Task:
    def __init__(self, path):
        self.path = path
        self.shapes = {}
        self.outputs = {}


class Fmap:
    def __init__(self, values):
        self._values = values
        self.freed = False

    def __getitem__(self, index):
        if self.freed:
            raise OSError("fmap already freed")
        return tuple(self._values[index])

    def __len__(self):
        return len(self._values)


def _read(path):
    with open(path, "rb") as fh:
        return array.array("f", fh.read())


def load(model):
    if isinstance(model, int):
        raise OSError("stand-in KPU loads from files only")
    with open(model, "rb") as fh:
        if not fh.read(16):
            raise OSError("empty kmodel")
    state["loaded"] = model
    try:
        with open("/kpu/fail_at") as fh:
            state["fail_at"] = int(fh.read())
    except OSError:
        state["fail_at"] = None
    return Task(model)


def set_outputs(task, index, w, h, ch):
    task.shapes[index] = w * h * ch


def forward(task, img):
    if img.drawn:
        raise ValueError("the KPU input was drawn on before forward()")
    if state["fail_at"] == img.key:
        raise OSError("KPU timeout")
    scores = _read("/kpu/%d.scores" % img.key)
    loc = _read("/kpu/%d.loc" % img.key)
    for index, values in ((0, scores), (1, loc)):
        if task.shapes.get(index) != len(values):
            raise OSError("ERR_OUTPUTS_SET: need kpu.set_outputs() to set shape")
    task.outputs = {0: Fmap(scores), 1: Fmap(loc)}
    state["forwards"] += 1
    return task.outputs[0]


def get_output(task, index):
    return task.outputs[index]


def fmap_free(fmap):
    fmap.freed = True
    state["freed"] += 1


def deinit(task):
    state["loaded"] = None
