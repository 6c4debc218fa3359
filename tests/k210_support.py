"""Shared pieces of the K210 tests: kmodels, camera-like frames, simulated KPU outputs, matching.

Everything is computed once per test session (``functools.cache``): compiling a kmodel takes
~10 s and simulating the 24 photos ~6 s per model.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from rpi_agent.detection.decoder import DecodeOptions, decode_landmarks, postprocess, postprocess_indexed
from rpi_agent.detection.layouts import SSD_LANDMARK
from rpi_agent.detection.preprocess import fit_to_input
from rpi_agent.detection.priors import PriorSpec, generate_priors
from rpi_agent.domain import Detection
from rpi_agent.errors import FaceAgentError
from rpi_agent.evaluation.agreement import greedy_match
from rpi_agent.geometry import iou_matrix
from rpi_agent.imaging.files import load_rgb
from rpi_agent.imaging.listing import iter_image_paths
from rpi_agent.k210.agreement import KpuOutputs
from rpi_agent.k210.micropython import run_micropython
from rpi_agent.paths import models_dir, shared_dir

KMODELS = ("slim-320", "RFB-320")
LANDMARK_KMODELS = ("slim-landmark-320", "RFB-landmark-320")
WIDTH, HEIGHT = 320, 240
SPEC = PriorSpec(WIDTH, HEIGHT)
REPO = Path(__file__).resolve().parent.parent
K210_DIR = REPO / "k210"
BOARD_STANDINS = Path(__file__).resolve().parent / "k210_board"


@functools.cache
def kmodel(name: str) -> Path:
    """The V5 kmodel of ``name``, compiled now if missing or older than the ONNX it comes from."""
    from rpi_agent.k210.build import build_v5, kmodel_is_current

    path = models_dir() / name / f"{name}-k210-v5.kmodel"
    if not kmodel_is_current(name, path):
        try:
            build_v5(name)
        except FaceAgentError as exc:
            pytest.fail(f"cannot build the {name} kmodel ({exc}); run scripts/k210_ci.sh first")
    return path


@functools.cache
def kmodel_v4(name: str) -> Path:
    """The V4 kmodel of ``name`` (ncc v0.2.0-beta2), compiled and checked now if missing or stale."""
    from rpi_agent.k210.ncc import default_ncc
    from rpi_agent.k210.v4 import build_v4, v4_is_current

    try:
        ncc = default_ncc()
        path = models_dir() / name / f"{name}-k210-v4.kmodel"
        if not v4_is_current(name, path, ncc=ncc):
            build_v4(name, ncc=ncc)
    except FaceAgentError as exc:
        pytest.fail(f"cannot build the {name} V4 kmodel ({exc}); run scripts/k210_ci.sh first")
    return path


@functools.cache
def simulated_v4_raw(name: str) -> tuple[np.ndarray, ...]:
    """nncase v0.2 runtime (``ncc infer``) outputs of every camera frame, in the kmodel's output order."""
    from rpi_agent.k210.ncc import default_ncc, infer

    return tuple(infer(default_ncc(), kmodel_v4(name), camera_frames()))


@functools.cache
def simulated_v4_outputs(name: str) -> KpuOutputs:
    """The V4 outputs as scores ``(N, P, 2)``, loc ``(N, P, 4)`` and landmarks ``(N, P, 10)`` or None."""
    from rpi_agent.k210.agreement import split_outputs

    return split_outputs(list(simulated_v4_raw(name)))


def simulated_v4(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The V4 outputs as scores ``(N, P, 2)`` and loc ``(N, P, 4)``."""
    out = simulated_v4_outputs(name)
    return out.scores, out.loc


@functools.cache
def photos() -> tuple[tuple[Path, ...], tuple[np.ndarray, ...]]:
    """The shared face photos and their pixels."""
    shared = shared_dir()
    if shared is None:
        pytest.fail("../shared is missing")
    paths = tuple(iter_image_paths([shared / "data" / "faces"]))
    return paths, tuple(load_rgb(p) for p in paths)


@functools.cache
def camera_frames() -> np.ndarray:
    """The photos as the K210 camera sees a scene: the whole view in a 320x240 frame.

    Returns:
        ``(N, 240, 320, 3)`` uint8 RGB.
    """
    return np.stack([fit_to_input(rgb, WIDTH, HEIGHT, "stretch")[0] for rgb in photos()[1]])


@functools.cache
def simulated_outputs(name: str) -> KpuOutputs:
    """nncase-simulated KPU outputs of every camera frame (landmarks too, for a landmark model)."""
    from rpi_agent.k210.simulator import simulate

    return simulate(kmodel(name), camera_frames())


def simulated(name: str) -> tuple[np.ndarray, np.ndarray]:
    """nncase-simulated KPU outputs of every camera frame: scores ``(N, P, 2)``, loc ``(N, P, 4)``."""
    out = simulated_outputs(name)
    return out.scores, out.loc


@functools.cache
def priors() -> np.ndarray:
    return generate_priors(SPEC)


LANDMARK_SPEC = SSD_LANDMARK.spec(WIDTH, HEIGHT)  # the slim/RFB landmark networks: unclipped priors


def numpy_faces_landmarks(out: KpuOutputs, i: int, *, threshold: float, top_k: int = -1,
                          width: float = WIDTH, height: float = HEIGHT
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The NumPy decoder on frame ``i`` of a landmark model's outputs, with the board's candidate bound.

    Returns:
        ``(M, 4)`` pixel boxes, ``(M,)`` scores and ``(M, 5, 2)`` pixel landmarks.
    """
    assert out.landmarks is not None
    table = generate_priors(LANDMARK_SPEC)
    options = DecodeOptions(score_threshold=threshold, top_k=top_k, candidate_size=BOARD_CANDIDATES)
    boxes, best, kept = postprocess_indexed(out.scores[i][:, 1], out.loc[i], table, LANDMARK_SPEC, options=options)
    points = decode_landmarks(out.landmarks[i][kept], table[kept], LANDMARK_SPEC)
    scale = np.array([width, height], dtype=np.float32)
    return boxes * np.tile(scale, 2), best, points * scale


MP_LOAD = """
import array, json, facedet
cfg = json.loads(open("/data/cfg.json").read())
def load(path):
    with open(path, "rb") as f:
        return array.array("f", f.read())
"""
"""MicroPython prelude of the board-decoder tests: the test's settings, and a loader of the output files it wrote."""

BOARD_CANDIDATES = 200  # k210/facedet.py decodes at most this many candidates: its heap bound


def numpy_faces(scores: np.ndarray, loc: np.ndarray, *, threshold: float, top_k: int = -1,
                width: float = WIDTH, height: float = HEIGHT) -> tuple[np.ndarray, np.ndarray]:
    """The NumPy decoder, with the board's candidate bound, on one frame's outputs.

    Returns:
        ``(M, 4)`` pixel boxes of a width x height frame and ``(M,)`` scores.
    """
    options = DecodeOptions(score_threshold=threshold, top_k=top_k, candidate_size=BOARD_CANDIDATES)
    boxes, best = postprocess(scores[:, 1], loc, priors(), SPEC, options=options)
    return boxes * np.array([width, height, width, height], dtype=np.float32), best


def kmodel_detections(name: str, *, threshold: float) -> list[list[Detection]]:
    """Faces the simulated kmodel finds in each photo, in the photo's own pixels (clipped)."""
    scores, loc = simulated(name)
    result = []
    for i, rgb in enumerate(photos()[1]):
        h, w = rgb.shape[:2]
        boxes, best = numpy_faces(scores[i], loc[i], threshold=threshold, width=w, height=h)
        boxes = np.clip(boxes, 0, [w, h, w, h])
        result.append([Detection((float(b[0]), float(b[1]), float(b[2]), float(b[3])), float(s))
                       for b, s in zip(boxes, best, strict=True)])
    return result


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return float(iou_matrix([a], [b])[0, 0])


def match_counts(found: list[Detection], reference: list[Detection], *, min_iou: float = 0.5) -> tuple[int, int, int]:
    """Greedy one-to-one matching, best score first: ``(true positives, false positives, misses)``."""
    tp = len(greedy_match(reference, found, iou_threshold=min_iou))
    return tp, len(found) - tp, len(reference) - tp


def f1_score(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


BOARD_WRAPPER = """
import json, sys
import machine, lcd, sensor, _kpu_sim
import main
cfg = dict(main.CONFIG)
cfg.update(json.loads(open("/test/cfg.json").read()))
try:
    main.main(None, cfg)
    outcome = "returned"
except KeyboardInterrupt:
    outcome = "stopped"
except machine.BoardReset:
    outcome = "reset"
print("SUMMARY " + json.dumps({"outcome": outcome, "machine": machine.state, "lcd": lcd.state,
                               "kpu": _kpu_sim.state, "sensor": sensor.state}))
"""


def _board_files(model: str, tmp_path: Path, *, sd: dict[str, bytes] | None,
                 fail_at: int | None = None, omit: tuple[str, ...] = ()) -> dict[str, Path]:
    files = {f"/lib/{p.relative_to(BOARD_STANDINS).as_posix()}": p for p in BOARD_STANDINS.rglob("*.py")}
    for name in omit:  # a firmware without that module
        files = {k: v for k, v in files.items() if not k.startswith(f"/lib/{name}")}
    for script in ("main.py", "facedet.py", "kpu_api.py"):
        files[f"/lib/{script}"] = K210_DIR / script
    outputs = simulated_v4_raw(model)
    (tmp_path / "count").write_text(str(outputs[0].shape[0]))
    files["/frames/count"] = tmp_path / "count"
    for i in range(outputs[0].shape[0]):
        for k, arr in enumerate(outputs):
            path = tmp_path / f"{i}.out{k}"
            path.write_bytes(np.ascontiguousarray(arr[i], dtype="<f4").tobytes())
            files[f"/kpu/{i}.out{k}"] = path
    if fail_at is not None:
        (tmp_path / "fail_at").write_text(str(fail_at))
        files["/kpu/fail_at"] = tmp_path / "fail_at"
    for name, data in (sd or {}).items():
        path = tmp_path / f"sd-{name}"
        path.write_bytes(data)
        files[f"/sd/{name}"] = path
    return files


def run_board(tmp_path: Path, *, sd: dict[str, bytes] | None, cfg: dict[str, object] | None = None,
              fail_at: int | None = None, name: str = KMODELS[0],
              omit: tuple[str, ...] = ()) -> tuple[list[bytes], dict, list[bytes]]:
    """Run k210/main.py under MicroPython with the firmware stand-ins and ``name``'s V4 outputs from nncase v0.2.

    ``omit`` drops stand-in modules (``("KPU",)``: a CanMV firmware, only ``maix.KPU``).

    Returns:
        The UART lines, the stand-ins' final state, and JSON lines printed to the REPL.
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    files = _board_files(name, tmp_path, sd=sd, fail_at=fail_at, omit=omit)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg or {}))
    files["/test/cfg.json"] = tmp_path / "cfg.json"
    out = run_micropython(BOARD_WRAPPER, files=files, sys_path=["/lib"])
    uart = [line[5:].encode() for line in out.splitlines() if line.startswith("UART ")]
    summary = json.loads(next(line[8:] for line in out.splitlines() if line.startswith("SUMMARY ")))
    repl = [line.encode() for line in out.splitlines() if line.startswith("{")]
    return uart, summary, repl


def sd_card(config: dict[str, object] | None = None, *, name: str = KMODELS[0]) -> dict[str, bytes]:
    """SD card files: the V4 kmodel and an optional faceagent.json."""
    sd = {"faceagent.kmodel": kmodel_v4(name).read_bytes()}
    if config is not None:
        sd["faceagent.json"] = json.dumps(config).encode()
    return sd
