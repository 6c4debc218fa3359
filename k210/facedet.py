# faceagent K210 post-processing: threshold -> decode candidates -> hard NMS (-> landmarks of the
# survivors, for models that have them).
#
# Pure MicroPython (MaixPy v0.6 is MicroPython 1.11: no f-strings, no annotations), also
# runs under CPython. The semantics follow rpi_agent/decoder.py so that the board and
# the Pi report the same faces:
#   * a prior is a candidate when its face score is strictly above the threshold;
#   * candidates are ranked by (score descending, prior index ascending) and only the
#     best `candidate_size` are decoded, which bounds heap use whatever the threshold;
#   * hard NMS drops a box whose IoU with a kept box is above `iou_threshold`, with the
#     same 1e-5 epsilon in the denominator, computed on normalised coordinates.
#
# Why priors are computed per index instead of stored: 4420 priors x 4 boxed floats
# would take ~280 KB of the 512 KB GC heap; a prior is a few multiplications.
# Why outputs are read through callbacks in chunks: on the board `fmap[a:b]` turns
# KPU output into a tuple of heap floats, and all 17,680 box values at once do not fit.

import math

try:
    from ulab import numpy as _np  # present only in the full MaixPy firmware builds
except ImportError:
    try:
        import ulab as _np  # older ulab exposes the functions at top level
    except ImportError:
        _np = None

MIN_BOXES = ((10, 16, 24), (32, 48), (64, 96), (128, 192, 256))
STRIDES = (8, 16, 32, 64)
RETINAFACE_MIN_BOXES = ((10, 20), (32, 64), (128, 256))
RETINAFACE_STRIDES = (8, 16, 32)
# Prior layouts by model family (rpi_agent/detection/layouts.py): (min boxes, strides, clip).
# The landmark slim/RFB networks use Ultra-Light's anchors unclipped.
LAYOUTS = {
    "ultra-light": (MIN_BOXES, STRIDES, True),
    "ssd-landmark": (MIN_BOXES, STRIDES, False),
    "retinaface": (RETINAFACE_MIN_BOXES, RETINAFACE_STRIDES, False),
}
CENTER_VARIANCE = 0.1
SIZE_VARIANCE = 0.2
NMS_EPS = 1e-5


def _ceil_div(a, b):
    return -(-a // b)


def _same(v):
    return v


def _clip01(v):
    if v < 0.0:
        return 0.0
    if v > 1.0:
        return 1.0
    return v


def priors_for(family, width=320, height=240):
    """The Priors of a model family ("ultra-light", "ssd-landmark", "retinaface")."""
    min_boxes, strides, clip = LAYOUTS[family]
    return Priors(width, height, min_boxes, strides, clip)


class Priors:
    """SSD priors of the detector, computed on demand by index.

    Same order and values as rpi_agent.detection.priors.generate_priors: feature map, row,
    column, prior size; centres (i + 0.5) * stride / size; everything clipped to [0, 1] when
    `clip` (Ultra-Light), not for the landmark networks.
    """

    def __init__(self, width, height, min_boxes=MIN_BOXES, strides=STRIDES, clip=True):
        self.width = width
        self.height = height
        fit = _clip01 if clip else _same
        # Per level: (first index, fm_w, per_cell, column centres, row centres, (w, h, w/2, h/2) per
        # size). The floats are made once here: reading a float object out of a tuple allocates
        # nothing, where computing it per candidate would (every float is a heap object).
        self._levels = []
        start = 0
        for sizes, stride in zip(min_boxes, strides):
            fm_w = _ceil_div(width, stride)
            fm_h = _ceil_div(height, stride)
            xs = tuple(fit((c + 0.5) * stride / width) for c in range(fm_w))
            ys = tuple(fit((r + 0.5) * stride / height) for r in range(fm_h))
            dims = []
            for size in sizes:
                w = fit(size / width)
                h = fit(size / height)
                dims.append((w, h, w / 2, h / 2))
            self._levels.append((start, fm_w, len(sizes), xs, ys, tuple(dims)))
            start += fm_w * fm_h * len(sizes)
        self.count = start

    def parts(self, index):
        """(cx, cy, (w, h, w/2, h/2)) of prior `index`, normalised; no new floats."""
        if index < 0 or index >= self.count:
            raise IndexError("prior index out of range")
        level = self._levels[0]
        for lv in self._levels:
            if lv[0] > index:
                break
            level = lv
        start, fm_w, per_cell, xs, ys, dims = level
        cell, k = divmod(index - start, per_cell)
        row, col = divmod(cell, fm_w)
        return xs[col], ys[row], dims[k]

    def get(self, index):
        """(cx, cy, w, h) of prior `index`, normalised to the input size."""
        cx, cy, dims = self.parts(index)
        return (cx, cy, dims[0], dims[1])


def _rank(cands):
    # Candidates are held as (-score, index): plain tuple order is then score descending, index
    # ascending, which makes ties deterministic (MicroPython's sort is not stable) without a
    # key function: MicroPython calls a key on every comparison, and each call would allocate
    # a tuple and a float (~160 KB of heap to sort 100 candidates).
    cands.sort()


def _above_plain(values, base, threshold, out):
    # values: flat (score_bg, score_face) pairs of priors base, base+1, ...
    # MicroPython slices only with step 1; plain iteration with a parity flag is the fastest
    # way through the pairs there (about 20% faster than indexing the odd positions).
    odd = False
    j = base
    for s in values:
        if odd:
            if s > threshold:
                out.append((-s, j))
            j += 1
        odd = not odd


def _above_ulab(values, base, threshold, out):
    arr = _np.array(values)
    face = arr[1::2]
    hits = _np.nonzero(face > threshold)[0]
    for j in hits:
        j = int(j)
        out.append((-float(face[j]), base + j))


def _above_indexed(score_at, base, end, threshold, out):
    # One float per prior (the face score only) instead of a tuple holding both scores: half
    # the heap a frame allocates, since every float read from an output map is a heap object.
    for j in range(base, end):
        s = score_at(2 * j + 1)
        if s > threshold:
            out.append((-s, j))


def find_candidates(read_scores, count, threshold, candidate_size=200, chunk=256, use_ulab=True, score_at=None):
    """Priors whose face score is above `threshold`, best first.

    Args:
        read_scores: callable (a, b) -> sequence of floats: the flattened (count, 2)
            score output from element a to element b (exclusive).
        score_at: optional callable i -> float, element i of that output: when given, only the
            face scores are read, one at a time (what the board uses; ulab is then not used).
        count: number of priors.
        threshold: keep scores strictly above this.
        candidate_size: keep at most this many (<= 0: all).
        chunk: priors read per call (heap use grows with it).
        use_ulab: vectorise the comparison with ulab when the firmware has it.

    Returns:
        list of (score, prior index), by score descending then index ascending.
    """
    above = _above_ulab if (use_ulab and _np is not None and hasattr(_np, "nonzero")) else _above_plain
    cands = []
    limit = 2 * candidate_size if candidate_size > 0 else 0
    base = 0
    while base < count:
        end = min(count, base + chunk)
        if score_at is not None:
            _above_indexed(score_at, base, end, threshold, cands)
        else:
            above(read_scores(2 * base, 2 * end), base, threshold, cands)
        if limit and len(cands) > limit:
            # Trimming early keeps the heap bounded at low thresholds; the global
            # ranking is unchanged because the key is a total order.
            _rank(cands)
            del cands[candidate_size:]
        base = end
    _rank(cands)
    if candidate_size > 0:
        del cands[candidate_size:]
    for k in range(len(cands)):
        c = cands[k]
        cands[k] = (-c[0], c[1])
    return cands


def decode(read_boxes, priors, cands):
    """Decode the regression offsets of the candidates into normalised xyxy boxes.

    Args:
        read_boxes: callable (a, b) -> floats of the flattened (count, 4) box output.
        priors: a Priors instance.
        cands: list of (score, prior index) from find_candidates.

    Returns:
        list of [x1, y1, x2, y2, score, prior index], normalised, in the order of `cands`.
    """
    out = []
    for score, idx in cands:
        d = read_boxes(4 * idx, 4 * idx + 4)
        pcx, pcy, dims = priors.parts(idx)
        cx = pcx + d[0] * CENTER_VARIANCE * dims[0]
        cy = pcy + d[1] * CENTER_VARIANCE * dims[1]
        # (w / 2) * e equals (w * e) / 2 exactly (halving is exact in binary floating point).
        hw = dims[2] * math.exp(d[2] * SIZE_VARIANCE)
        hh = dims[3] * math.exp(d[3] * SIZE_VARIANCE)
        out.append([cx - hw, cy - hh, cx + hw, cy + hh, score, idx])
    return out


def add_landmarks(read_landmarks, priors, faces):
    """Replace the prior index that ends each face with its five landmarks, in place.

    Decoded only for the faces NMS kept (a few), as the Pi does: prior centre + offset x centre
    variance x prior size, like rpi_agent.detection.decoder.decode_landmarks.

    Args:
        read_landmarks: callable (a, b) -> floats of the flattened (count, 10) landmark output.
        priors: a Priors instance.
        faces: [x1, y1, x2, y2, score, prior index] lists from decode (and nms).

    Returns:
        `faces`, each now [x1, y1, x2, y2, score, [[x, y] x 5]], normalised.
    """
    for f in faces:
        idx = f[5]
        d = read_landmarks(10 * idx, 10 * idx + 10)
        pcx, pcy, dims = priors.parts(idx)
        sx = CENTER_VARIANCE * dims[0]
        sy = CENTER_VARIANCE * dims[1]
        f[5] = [[pcx + d[2 * k] * sx, pcy + d[2 * k + 1] * sy] for k in range(5)]
    return faces


def _area(b):
    w = b[2] - b[0]
    h = b[3] - b[1]
    if w <= 0.0 or h <= 0.0:
        return 0.0
    return w * h


def iou(a, b, area_a=None, area_b=None):
    """IoU of two xyxy boxes with the decoder's epsilon in the denominator."""
    # Disjoint boxes (most pairs) return before any float is allocated beyond the width.
    w = min(a[2], b[2]) - max(a[0], b[0])
    if w <= 0.0:
        return 0.0
    h = min(a[3], b[3]) - max(a[1], b[1])
    if h <= 0.0:
        return 0.0
    inter = w * h
    if area_a is None:
        area_a = _area(a)
    if area_b is None:
        area_b = _area(b)
    return inter / (area_a + area_b - inter + NMS_EPS)


def nms(boxes, iou_threshold=0.3, top_k=-1):
    """Greedy hard NMS over boxes already sorted best first.

    Args:
        boxes: list of [x1, y1, x2, y2, score], best first.
        iou_threshold: drop a box whose IoU with a kept one is above this.
        top_k: keep at most this many (<= 0: all).

    Returns:
        the kept boxes, best first.
    """
    kept = []
    areas = []
    for b in boxes:
        area = _area(b)
        ok = True
        for k in range(len(kept)):
            if iou(kept[k], b, areas[k], area) > iou_threshold:
                ok = False
                break
        if ok:
            kept.append(b)
            areas.append(area)
            if 0 < top_k == len(kept):
                break
    return kept


def to_pixels(boxes, width, height, ndigits=1):
    """Scale normalised boxes to pixels of a width x height frame, clipped to the frame.

    Landmarks (a sixth item of five [x, y]) are scaled too but not clipped: a point of a face
    cut by the frame's edge lies outside it, as on the Pi.
    """
    out = []
    for b in boxes:
        x1 = min(max(b[0] * width, 0.0), float(width))
        y1 = min(max(b[1] * height, 0.0), float(height))
        x2 = min(max(b[2] * width, 0.0), float(width))
        y2 = min(max(b[3] * height, 0.0), float(height))
        face = [round(x1, ndigits), round(y1, ndigits), round(x2, ndigits), round(y2, ndigits), round(b[4], 4)]
        if len(b) > 5 and isinstance(b[5], list):
            face.append([[round(p[0] * width, ndigits), round(p[1] * height, ndigits)] for p in b[5]])
        out.append(face)
    return out


def detect(read_scores, read_boxes, priors, threshold=0.6, iou_threshold=0.3, top_k=-1,
           candidate_size=200, chunk=256, score_at=None, read_landmarks=None):
    """Threshold -> decode -> NMS (-> landmarks of the kept faces) on one frame's outputs.

    Args:
        read_landmarks: callable (a, b) -> floats of the flattened (count, 10) landmark output,
            for a model that has one; None: no landmarks.

    Returns:
        list of [x1, y1, x2, y2, score] (plus [[x, y] x 5] with `read_landmarks`), normalised to
        the network input, best first.
    """
    cands = find_candidates(read_scores, priors.count, threshold, candidate_size, chunk, True, score_at)
    kept = nms(decode(read_boxes, priors, cands), iou_threshold, top_k)
    if read_landmarks is not None:
        return add_landmarks(read_landmarks, priors, kept)
    for f in kept:
        f.pop()  # the prior index
    return kept
