"""WIDER FACE submission files: ``<event>/<name>.txt`` with a name line, a count line and
one ``x y w h score`` line per face."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rpi_agent.domain import Detection
from rpi_agent.errors import DatasetError


def to_xywh(faces: Sequence[Detection], *, truncate: bool = False) -> np.ndarray:
    """Faces as ``(P, 5)`` float64 ``(x, y, w, h, score)`` rows in whole pixels.

    Rounding outward (floor of the corner, ceil of the size) is how Ultra-Light's upstream wrote
    its submissions, and the reference AP figures were made that way. ``truncate`` is the landmark
    networks' upstream script instead: both corners truncated toward zero, ``w = int(x2) - int(x1)``.
    """
    if truncate:
        rows = [(int(x1), int(y1), int(x2) - int(x1), int(y2) - int(y1), round(score, 3))
                for (x1, y1, x2, y2), score in ((f.box, f.score) for f in faces)]
    else:
        rows = [(math.floor(x1), math.floor(y1), math.ceil(x2 - x1), math.ceil(y2 - y1), round(score, 3))
                for (x1, y1, x2, y2), score in ((f.box, f.score) for f in faces)]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def write_prediction(out_dir: Path, event: str, name: str, rows: np.ndarray) -> Path:
    """Write one image's submission file; returns its path."""
    path = out_dir / event / f"{name}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [name, str(rows.shape[0])]
    lines += [f"{x:.0f} {y:.0f} {w:.0f} {h:.0f} {s:.3f}" for x, y, w, h, s in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_prediction(path: Path) -> np.ndarray:
    """Parse one submission file into ``(P, 5)`` float64 rows, in file order.

    Raises:
        DatasetError: The file is not in the submission format.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) < 2:
        raise DatasetError(f"{path}: a prediction file needs a name line and a count line")
    try:
        count = int(lines[1].strip())
        rows = [[float(v) for v in line.split()[:5]] for line in lines[2 : 2 + count] if line.strip()]
    except ValueError as exc:
        raise DatasetError(f"{path}: malformed prediction line ({exc})") from None
    if len(rows) != count or any(len(r) != 5 for r in rows):
        raise DatasetError(f"{path}: expected {count} lines of 'x y w h score'")
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def read_predictions(pred_dir: str | Path) -> dict[tuple[str, str], np.ndarray]:
    """Every ``<event>/<name>.txt`` under ``pred_dir``, keyed by ``(event, name)``.

    Raises:
        DatasetError: The folder is missing, empty, or holds a malformed file.
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise DatasetError(f"{pred_dir}: prediction folder not found")
    preds = {(p.parent.name, p.stem): read_prediction(p) for p in sorted(pred_dir.glob("*/*.txt"))}
    if not preds:
        raise DatasetError(f"{pred_dir}: no <event>/<name>.txt prediction files")
    return preds
