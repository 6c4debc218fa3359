# ruff: noqa: UP031  (MicroPython 1.11 on the board has no f-strings; keep its dialect)
"""Stand-in for CanMV's ``maix`` package: only ``maix.KPU``, as released CanMV (v1.0.x) has it.

``KPU().load_kmodel(path)`` / ``load_kmodel(offset, size)`` load; ``run_with_output(img,
getlist=False)`` runs and returns output 0 as a list when ``getlist`` is set, else None. There is
no way to read output 1 (``k210_kpu_locals_dict_table`` in CanMV's ``py_kpu.c`` has no
``get_output``).
"""

import _kpu_sim as _legacy


class KPU:
    def __init__(self):
        self.task = None

    def load_kmodel(self, path, size=0):
        if not isinstance(path, str) and size <= 0:
            raise ValueError("size error!")
        self.task = _legacy.load(path)

    def run_with_output(self, input=None, getlist=False, get_feature=False):
        for i in (0, 1):
            self.task.shapes[i] = len(_legacy._read("/kpu/%d.out%d" % (input.key, i)))
        first = _legacy.forward(self.task, input)
        return list(first[:]) if getlist else None

    def deinit(self):
        self.task = None
        return True
