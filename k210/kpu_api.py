# faceagent K210: the kmodel checks and the two firmware KPU APIs main.py runs the model through.
#
# MicroPython 1.11 (MaixPy) dialect: no f-strings, no annotations. Also runs under CPython.
#
# Firmware x API (see k210/README.md):
#   * MaixPy v0.6.x: module `KPU`: task = load(path|offset); set_outputs(task, i, w, h, ch) (V4);
#     fmap = forward(task, img); get_output(task, i); fmap[a:b] -> tuple of floats; fmap_free(fmap).
#   * CanMV (kendryte, up to v1.0.7): class `maix.KPU`: kpu = KPU(); load_kmodel(path) or
#     load_kmodel(offset, size); run_with_output(img, getlist=False) runs the model and returns
#     output 0 only, and only as one list of all its floats (getlist=True).
#   * CanMV branch feat/kpu: kpu.load(path); kpu.run(img); kpu.get_outputs(i) -> list: its runtime is
#     nncase 1.1 (kmodel V5), which cannot run a V4 file.
# The face model has two outputs (scores 4420x2, boxes 4420x4), a landmark model a third (4420x10):
# CanMV's released API cannot reach the second, and a list of all 8840 scores alone would take ~350 KB of a ~768 KB heap, so on that
# API the script stops with one message instead of running out of memory mid-frame.

import os
import struct

try:
    import facedet
except ImportError:  # imported from a host test without the board folder on the path
    facedet = None

# Output order of the V4 files ncc writes, for a kmodel at a flash offset (no header to read).
FLASH_ORDER = {
    "ultra-light": {"boxes": 0, "scores": 1, "landmarks": None},
    "ssd-landmark": {"boxes": 0, "scores": 1, "landmarks": 2},
}
HEADER_BYTES = 40  # 10 x u32: 'KMDL', version, flags, target, constants, main_mem, nodes, inputs, outputs, reserved


class BoardProblem(Exception):
    """Something only the user can fix (wrong file, wrong firmware): reported, never retried."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def firmware_name():
    try:
        u = os.uname()
        return "%s %s" % (u[4], u[3])  # machine, version: e.g. "Sipeed_M1 with kendryte-k210 v0.6.2-..."
    except Exception:  # noqa: BLE001
        return "unknown"


def _read_header(path):
    with open(path, "rb") as fh:
        head = fh.read(HEADER_BYTES)
        if len(head) >= 4 and struct.unpack("<I", head[:4])[0] == 3:
            return 3, head, None
        if len(head) < 8 or head[:4] != b"LDMK":
            return None, head, None
        version = struct.unpack("<I", head[4:8])[0]
        if version != 4 or len(head) < HEADER_BYTES:
            return version, head, None
        fields = struct.unpack("<10I", head)
        constants, nodes, n_in, n_out = fields[4], fields[6], fields[7], fields[8]
        tables = fh.read(n_in * 32 + n_out * 16)
        fh.seek(HEADER_BYTES + len(tables) + constants)
        bodies = 0
        expected = HEADER_BYTES + n_in * 32 + n_out * 16 + constants + nodes * 8
        for _ in range(nodes):
            node = fh.read(8)
            if len(node) < 8:
                return 4, head, (expected, None)
            bodies += struct.unpack("<2I", node)[1]
        outputs = []
        for i in range(n_out):
            at = n_in * 32 + i * 16
            if len(tables) >= at + 16:
                outputs.append(struct.unpack("<4I", tables[at:at + 16])[3] // 4)  # float32 count
        return 4, head, (expected + bodies, outputs)


def file_size(path):
    return os.stat(path)[6]


def check_kmodel(path, firmware):
    """(code, reason) if the file is not a whole kmodel V4 (or V3) this firmware loads, else None."""
    try:
        version, head, extra = _read_header(path)
    except OSError as exc:
        return ("no_model", "cannot read %s: %s" % (path, exc))
    size = file_size(path)
    if version is None:
        return ("kmodel_format", "%s is not a kmodel (%d bytes, no KMDL header)" % (path, size))
    if version >= 5:
        return ("kmodel_version", "%s is kmodel V%d (nncase >= 1.0); firmware %s loads V3/V4 only: copy the "
                                  "-k210-v4.kmodel" % (path, version, firmware))
    if version == 4:
        if extra is None or extra[1] is None:
            return ("kmodel_truncated", "%s is truncated: %d bytes, its header says more" % (path, size))
        if size < extra[0]:
            return ("kmodel_truncated", "%s is truncated: %d of %d bytes" % (path, size, extra[0]))
    return None


def _order(outputs, priors):
    """{"scores", "boxes", "landmarks"} -> output index, from the V4 outputs' float counts, or None."""
    want = {2 * priors: "scores", 4 * priors: "boxes", 10 * priors: "landmarks"}
    order = {"landmarks": None}
    for i in range(len(outputs)):
        kind = want.get(outputs[i])
        if kind is None or order.get(kind) is not None:
            return None
        order[kind] = i
    if len(outputs) not in (2, 3) or "scores" not in order or "boxes" not in order:
        return None
    return order


def model_layout(model, size_hint=0, landmarks=False):
    """{"version", "size", "scores", "boxes", "landmarks", "priors", "family"}: which output holds
    what (read from the header) and the prior layout: "ultra-light", or "ssd-landmark" for the
    slim/RFB landmark networks, whose third output holds five points per prior ("landmarks" is
    None without one). A kmodel at a flash offset has no header to read here: `landmarks` (the
    config's) says which model it is, FLASH_ORDER where ncc puts its outputs."""
    priors = facedet.Priors(320, 240).count
    if not isinstance(model, str):
        order = FLASH_ORDER["ssd-landmark" if landmarks else "ultra-light"]
        layout = {"version": 4, "size": size_hint, "priors": priors,
                  "family": "ssd-landmark" if landmarks else "ultra-light"}
        layout.update(order)
        return layout
    version, head, extra = _read_header(model)
    layout = {"version": version, "size": file_size(model), "scores": 0, "boxes": 1, "landmarks": None,
              "priors": priors, "family": "ultra-light"}
    if version == 4 and extra is not None and extra[1]:
        outputs = extra[1]
        order = _order(outputs, priors)
        if order is None:
            raise BoardProblem("kmodel_outputs", "%s: outputs of %s floats are not the face model's scores "
                                                 "(%d), boxes (%d) and optional landmarks (%d)"
                               % (model, outputs, 2 * priors, 4 * priors, 10 * priors))
        layout.update(order)
        if order["landmarks"] is not None:
            layout["family"] = "ssd-landmark"
    return layout


def _reader(fmap):
    return lambda a, b: fmap[a:b]


def _at(fmap):
    return lambda i: fmap[i]


class MaixPyKPU:
    """MaixPy v0.6's `KPU` module."""

    name = "MaixPy KPU"

    def __init__(self, module):
        self.kpu = module
        self.task = None
        self.layout = None
        self.fmap = None

    def load(self, model, layout):
        try:
            self.task = self.kpu.load(model)
        except Exception as exc:  # noqa: BLE001  (the firmware raises ValueError/OSError with codes)
            raise BoardProblem("kmodel_load", "firmware %s could not load kmodel V%s %s: %s"
                               % (firmware_name(), layout["version"], model, exc))
        if layout["version"] == 4:  # V4 outputs need their shapes; V3 carries them
            p = layout["priors"]
            self.kpu.set_outputs(self.task, layout["scores"], 2, p, 1)
            self.kpu.set_outputs(self.task, layout["boxes"], 4, p, 1)
            if layout.get("landmarks") is not None:
                self.kpu.set_outputs(self.task, layout["landmarks"], 10, p, 1)
        self.layout = layout

    def run(self, img):
        """(read_scores, read_boxes, score_at, read_landmarks or None) of this frame's outputs."""
        first = self.kpu.forward(self.task, img)  # output 0; the others through get_output
        self.fmap = first

        def output(i):
            return first if i == 0 else self.kpu.get_output(self.task, i)

        scores = output(self.layout["scores"])
        boxes = output(self.layout["boxes"])
        m = self.layout.get("landmarks")
        return _reader(scores), _reader(boxes), _at(scores), (None if m is None else _reader(output(m)))

    def free(self):
        if self.fmap is not None and hasattr(self.kpu, "fmap_free"):
            self.kpu.fmap_free(self.fmap)  # the firmware's own examples free forward()'s map every frame
        self.fmap = None


class CanMVKPU:
    """CanMV's `maix.KPU` class: loads V4, but hands out only output 0, as a whole list."""

    name = "CanMV maix.KPU"

    def __init__(self, cls):
        self.cls = cls
        self.kpu = None
        self.layout = None

    def load(self, model, layout):
        if not hasattr(self.cls, "load_kmodel"):
            raise BoardProblem("kmodel_version", "firmware %s: this maix.KPU (CanMV feat/kpu) runs kmodel V5 "
                                                 "(nncase 1.1) only, the file is V%s" % (firmware_name(), layout["version"]))
        self.kpu = self.cls()
        try:
            if isinstance(model, str):
                self.kpu.load_kmodel(model)
            else:
                self.kpu.load_kmodel(model, layout["size"])
        except Exception as exc:  # noqa: BLE001
            raise BoardProblem("kmodel_load", "firmware %s could not load kmodel V%s %s: %s"
                               % (firmware_name(), layout["version"], model, exc))
        if not hasattr(self.kpu, "get_output"):
            self.kpu.deinit()
            raise BoardProblem("kpu_api", "firmware %s: CanMV maix.KPU returns only output 0, as a list of all "
                                          "its floats; the face model needs outputs 0 and 1 read in chunks: "
                                          "use a MaixPy v0.6.x firmware (KPU module)" % firmware_name())
        self.layout = layout

    def run(self, img):
        self.kpu.run_with_output(img)
        scores = self.kpu.get_output(self.layout["scores"])
        m = self.layout.get("landmarks")
        return (_reader(scores), _reader(self.kpu.get_output(self.layout["boxes"])), _at(scores),
                None if m is None else _reader(self.kpu.get_output(m)))

    def free(self):
        pass
