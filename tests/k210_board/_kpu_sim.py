# ruff: noqa: UP031  (MicroPython 1.11 on the board has no f-strings; keep its dialect)
"""The simulated KPU behind the stand-ins for MaixPy's ``KPU`` module and CanMV's ``maix.KPU``.

``load`` refuses what MaixPy's ``Maix_kpu.c`` refuses (not V3/V4: ``ERR_KMODEL_VERSION``); like
MaixPy with a V4 kmodel, ``forward`` refuses to run until ``set_outputs`` gave every output a
shape whose size matches. Frame i's outputs, in the kmodel's output order, are ``/kpu/i.out0``,
``/kpu/i.out1`` (and ``/kpu/i.out2`` for a landmark model; float32, from nncase v0.2's runtime);
``/kpu/fail_at`` makes ``forward`` raise OSError at that frame. Output maps slice into tuples of
floats, as on a board, and every read records the GC heap in use (``state["heap_peak"]``, after
a collection).
"""

import array
import gc

state = {"loaded": None, "forwards": 0, "freed": 0, "fail_at": None, "heap_peak": 0, "heap_samples": 0}
_frame = {"base": None}


def heap_probe():
    # Heap in use now minus what was in use when forward() handed out this frame's maps. Where
    # gc.collect() frees memory this is the frame's live data; where it does not (the WebAssembly
    # port frees nothing while a script runs) it is everything the frame allocated so far, an
    # upper bound of its high-water mark. The maps themselves are KPU/main RAM on a board.
    if _frame["base"] is None:
        return
    gc.collect()
    used = gc.mem_alloc() - _frame["base"]
    state["heap_samples"] += 1
    state["heap_peak"] = max(state["heap_peak"], used)


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
        if isinstance(index, int):
            return self._values[index]  # one float, as fmap[i] on a board
        out = tuple(self._values[index])
        heap_probe()
        return out

    def __len__(self):
        return len(self._values)


def _read(path):
    with open(path, "rb") as fh:
        return array.array("f", fh.read())


def load(model):
    if isinstance(model, int):
        raise OSError("stand-in KPU loads from files only")
    with open(model, "rb") as fh:
        head = fh.read(8)
    if len(head) < 8:
        raise OSError("empty kmodel")
    if not (head[:4] == b"\x03\x00\x00\x00" or (head[:4] == b"LDMK" and head[4] == 4)):
        raise ValueError("[MAIXPY]kpu: load error:2002, ERR_KMODEL_VERSION: only support kmodel V3/V4 now")
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
    outs = []
    for i in range(3):
        try:
            outs.append(_read("/kpu/%d.out%d" % (img.key, i)))
        except OSError:
            break
    for index, values in enumerate(outs):
        if task.shapes.get(index) != len(values):
            raise OSError("ERR_OUTPUTS_SET: need kpu.set_outputs() to set shape")
    task.outputs = {}
    for index in range(len(outs)):
        task.outputs[index] = Fmap(outs[index])
    outs = None
    gc.collect()
    _frame["base"] = gc.mem_alloc()
    state["forwards"] += 1
    return task.outputs[0]


def get_output(task, index):
    return task.outputs[index]


def fmap_free(fmap):
    fmap.freed = True
    state["freed"] += 1


def deinit(task):
    state["loaded"] = None
