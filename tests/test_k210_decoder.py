"""The board's decoder (k210/facedet.py) under a real MicroPython matches the NumPy decoder on real KPU outputs."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from k210_support import K210_DIR, KMODELS, MP_LOAD, SPEC, numpy_faces, priors, simulated

from rpi_agent.k210.micropython import run_micropython

# Read the outputs the way main.py reads the KPU's: through slices, in chunks.
MP_DECODE = MP_LOAD + """
pri = facedet.Priors(320, 240)
for i in range(cfg["frames"]):
    s = load("/data/%d.scores" % i)
    b = load("/data/%d.loc" % i)
    for thr in cfg["thresholds"]:
        faces = facedet.detect(lambda a, z: s[a:z], lambda a, z: b[a:z], pri, thr, 0.3, -1, 200, cfg["chunk"])
        print(json.dumps({"frame": i, "threshold": thr, "faces": faces}))
"""
THRESHOLDS = (0.6, 0.3, 0.05)


def _write_outputs(folder: Path, scores: np.ndarray, loc: np.ndarray) -> dict[str, Path]:
    files = {}
    for i in range(scores.shape[0]):
        for kind, arr in (("scores", scores[i]), ("loc", loc[i])):
            path = folder / f"{i}.{kind}"
            path.write_bytes(np.ascontiguousarray(arr, dtype="<f4").tobytes())
            files[f"/data/{i}.{kind}"] = path
    return files


def _run_board_decoder(tmp_path: Path, scores: np.ndarray, loc: np.ndarray, *, chunk: int) -> list[dict]:
    files = _write_outputs(tmp_path, scores, loc)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"frames": int(scores.shape[0]), "thresholds": THRESHOLDS, "chunk": chunk}))
    files.update({"/data/cfg.json": cfg, "/lib/facedet.py": K210_DIR / "facedet.py"})
    out = run_micropython(MP_DECODE, files=files, sys_path=["/lib"])
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _assert_same(board: list[list[float]], boxes: np.ndarray, best: np.ndarray, label: str) -> None:
    assert len(board) == len(best), f"{label}: board {len(board)} faces, NumPy {len(best)}"
    if len(board):
        arr = np.asarray(board, dtype=np.float64)
        np.testing.assert_allclose(arr[:, :4], boxes, atol=1e-5, err_msg=label)
        np.testing.assert_allclose(arr[:, 4], best, atol=1e-6, err_msg=label)


@pytest.mark.parametrize(("name", "chunk"), [(KMODELS[0], 256), (KMODELS[1], 97)])
def test_micropython_decoder_matches_numpy_on_simulated_kpu_outputs(tmp_path: Path, name: str, chunk: int) -> None:
    scores, loc = simulated(name)
    results = _run_board_decoder(tmp_path, scores, loc, chunk=chunk)
    assert len(results) == scores.shape[0] * len(THRESHOLDS)
    total = 0
    for res in results:
        i, thr = res["frame"], res["threshold"]
        boxes, best = numpy_faces(scores[i], loc[i], threshold=thr, width=1.0, height=1.0)
        _assert_same(res["faces"], boxes, best, f"{name} frame {i} threshold {thr}")
        total += len(best)
    assert total > 500  # the photos are full of faces: the comparison is not vacuous


def _load_facedet(*, with_ulab: bool) -> types.ModuleType:
    # A fresh copy of the board module, optionally seeing NumPy as ulab's numpy (ulab mirrors
    # NumPy's API), so that the vectorised branch the full firmware takes is exercised too.
    saved = sys.modules.pop("ulab", None)
    if with_ulab:
        fake = types.ModuleType("ulab")
        fake.numpy = np  # type: ignore[attr-defined]
        sys.modules["ulab"] = fake
    try:
        spec = importlib.util.spec_from_file_location(f"facedet_{with_ulab}", K210_DIR / "facedet.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop("ulab", None)
        if saved is not None:
            sys.modules["ulab"] = saved
    return module


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_ulab_branch_finds_the_same_candidates_as_the_plain_one(threshold: float) -> None:
    scores, _ = simulated(KMODELS[0])
    plain, vector = _load_facedet(with_ulab=False), _load_facedet(with_ulab=True)
    assert plain._np is None and vector._np is np
    for frame in scores[:6]:
        flat = frame.reshape(-1).tolist()
        def read(a: int, b: int, flat: list[float] = flat) -> list[float]:
            return flat[a:b]
        want = plain.find_candidates(read, frame.shape[0], threshold, 200, 256)
        got = vector.find_candidates(read, frame.shape[0], threshold, 200, 256)
        assert got == want


def test_priors_computed_per_index_equal_the_numpy_priors() -> None:
    board = _load_facedet(with_ulab=False).Priors(SPEC.width, SPEC.height)
    table = np.array([board.get(i) for i in range(board.count)], dtype=np.float32)
    np.testing.assert_allclose(table, priors(), atol=1e-7)
    with pytest.raises(IndexError):
        board.get(board.count)


def test_nms_keeps_the_best_of_overlapping_boxes_and_respects_top_k() -> None:
    facedet = _load_facedet(with_ulab=False)
    boxes = [[0.0, 0.0, 10.0, 10.0, 0.9], [1.0, 1.0, 11.0, 11.0, 0.8], [20.0, 20.0, 30.0, 30.0, 0.7],
             [0.0, 0.0, 10.0, 5.0, 0.6]]
    # IoU(0, 1) = 81 / 119 = 0.68 → dropped; IoU(0, 3) = 50 / 100 = 0.5 → dropped at 0.3, kept at 0.6.
    assert facedet.nms(boxes, 0.3) == [boxes[0], boxes[2]]
    assert facedet.nms(boxes, 0.6) == [boxes[0], boxes[2], boxes[3]]
    assert facedet.nms(boxes, 0.3, 1) == [boxes[0]]
