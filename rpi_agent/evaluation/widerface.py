"""The official WIDER FACE validation protocol, in NumPy.

Follows the widely used Python port of the official evaluation: scores normalised to [0, 1]
over all predictions, face boxes outside a difficulty's keep list ignored, IoU 0.5 with the
"+1 pixel" box convention, 1000 score thresholds, and VOC-style AP of the resulting
precision/recall curve. Only the images that have a prediction file are evaluated, so any
subset of the val set (such as ``val_dev``) works.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rpi_agent.errors import DatasetError, RuntimeMissingError

log = logging.getLogger(__name__)

SETTINGS: tuple[str, ...] = ("easy", "medium", "hard")
THRESH_NUM = 1000
IOU_THRESHOLD = 0.5
GT_FILES = {
    "all": "wider_face_val.mat",
    "easy": "wider_easy_val.mat",
    "medium": "wider_medium_val.mat",
    "hard": "wider_hard_val.mat",
}


@dataclass(frozen=True, slots=True)
class ImageTruth:
    """Ground truth of one val image.

    Attributes:
        boxes: ``(G, 4)`` float64 ``(x, y, w, h)`` face boxes.
        keep: Per setting, 0-based indices of the boxes that count; the others are ignored.
    """

    boxes: np.ndarray
    keep: dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class WiderResult:
    """AP per setting and the curves behind it.

    Attributes:
        ap: ``{"easy": .., "medium": .., "hard": ..}``.
        precision: Per setting, ``(THRESH_NUM,)`` precision at each score threshold.
        recall: Per setting, ``(THRESH_NUM,)`` recall at each score threshold.
        images: Number of images evaluated.
        faces: Per setting, number of faces that count.
    """

    ap: dict[str, float]
    precision: dict[str, np.ndarray] = field(repr=False)
    recall: dict[str, np.ndarray] = field(repr=False)
    images: int
    faces: dict[str, int]


def _load_mat(path: Path) -> dict:
    try:
        from scipy.io import loadmat
    except ImportError:
        raise RuntimeMissingError("reading WIDER FACE ground truth needs scipy: pip install faceagent[eval]") from None

    if not path.is_file():
        raise DatasetError(f"WIDER FACE ground truth file missing: {path}")
    try:
        return loadmat(str(path))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read ground truth .mat ({exc})") from None


def load_ground_truth(gt_dir: str | Path) -> dict[tuple[str, str], ImageTruth]:
    """Read the official val ``.mat`` files.

    Args:
        gt_dir: Folder holding ``wider_face_val.mat`` and ``wider_{easy,medium,hard}_val.mat``.

    Returns:
        ``{(event, image_name): ImageTruth}`` for every val image.

    Raises:
        DatasetError: A file is missing, unreadable or lacks the expected fields.
    """
    gt_dir = Path(gt_dir)
    mats = {key: _load_mat(gt_dir / name) for key, name in GT_FILES.items()}
    try:
        events = mats["all"]["event_list"]
        files = mats["all"]["file_list"]
        boxes = mats["all"]["face_bbx_list"]
        keeps = {s: mats[s]["gt_list"] for s in SETTINGS}
    except KeyError as exc:
        raise DatasetError(f"{gt_dir}: ground truth .mat lacks field {exc}") from None
    truth: dict[tuple[str, str], ImageTruth] = {}
    for i in range(events.shape[0]):
        event = str(events[i][0][0])
        for j in range(files[i][0].shape[0]):
            name = str(files[i][0][j][0][0])
            # The keep lists are 1-based MATLAB indices.
            keep = {s: keeps[s][i][0][j][0].reshape(-1).astype(np.int64) - 1 for s in SETTINGS}
            truth[(event, name)] = ImageTruth(boxes[i][0][j][0].astype(np.float64).reshape(-1, 4), keep)
    return truth


def box_overlaps(boxes: np.ndarray, query: np.ndarray) -> np.ndarray:
    """IoU of ``(N, 4)`` against ``(K, 4)`` xyxy boxes with the inclusive-pixel (+1) convention."""
    area_b = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    area_q = (query[:, 2] - query[:, 0] + 1) * (query[:, 3] - query[:, 1] + 1)
    iw = np.minimum(boxes[:, None, 2], query[None, :, 2]) - np.maximum(boxes[:, None, 0], query[None, :, 0]) + 1
    ih = np.minimum(boxes[:, None, 3], query[None, :, 3]) - np.maximum(boxes[:, None, 1], query[None, :, 1]) + 1
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    union = area_b[:, None] + area_q[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)


def _xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    out = boxes[:, :4].astype(np.float64, copy=True)
    out[:, 2:] += out[:, :2]
    return out


def image_eval(
    pred: np.ndarray, gt: np.ndarray, counted: np.ndarray, iou_thresh: float
) -> tuple[np.ndarray, np.ndarray]:
    """Match one image's predictions (in file order) to its faces.

    Each prediction is assigned to the face it overlaps most. Above ``iou_thresh``, a counted
    face becomes recalled by the first prediction that hits it; a prediction hitting an
    ignored face is no proposal at all.

    Args:
        pred: ``(P, 5)`` ``(x, y, w, h, score)``, best score first.
        gt: ``(G, 4)`` ``(x, y, w, h)``.
        counted: ``(G,)`` bool, faces that count in this setting.
        iou_thresh: Minimum IoU of a hit.

    Returns:
        ``(pred_recall, is_proposal)``: faces recalled by predictions ``0..h`` (``(P,)`` int)
        and whether prediction ``h`` counts as a proposal (``(P,)`` bool).
    """
    overlaps = box_overlaps(_xywh_to_xyxy(pred), _xywh_to_xyxy(gt))
    best = overlaps.argmax(axis=1)
    hit = overlaps[np.arange(pred.shape[0]), best] >= iou_thresh
    is_proposal = ~(hit & ~counted[best])
    recalling = np.flatnonzero(hit & counted[best])
    first = np.zeros(pred.shape[0], dtype=np.int64)
    if recalling.size:
        _, first_pos = np.unique(best[recalling], return_index=True)
        first[recalling[first_pos]] = 1
    return np.cumsum(first), is_proposal


def thresholds(thresh_num: int = THRESH_NUM) -> np.ndarray:
    """Score thresholds of the PR curve, from just below 1 down to 0."""
    return 1.0 - np.arange(1, thresh_num + 1, dtype=np.float64) / thresh_num


def img_pr_info(scores: np.ndarray, is_proposal: np.ndarray, pred_recall: np.ndarray, thresh: np.ndarray) -> np.ndarray:
    """Proposals and recalled faces of one image at every threshold.

    As the official code does, the cut-off at a threshold is the *last* prediction in file
    order whose score reaches it.

    Returns:
        ``(T, 2)`` float64: ``(proposals, recalled faces)`` per threshold.
    """
    out = np.zeros((thresh.shape[0], 2), dtype=np.float64)
    if scores.size == 0:
        return out
    suffix_max = np.maximum.accumulate(scores[::-1])[::-1]
    count = np.searchsorted(-suffix_max, -thresh, side="right")
    valid = count > 0
    last = count[valid] - 1
    out[valid, 0] = np.cumsum(is_proposal)[last]
    out[valid, 1] = pred_recall[last]
    return out


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope, VOC style (all recall change points)."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    change = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[change + 1] - mrec[change]) * mpre[change + 1]))


def normalize_scores(preds: dict[tuple[str, str], np.ndarray]) -> dict[tuple[str, str], np.ndarray]:
    """Rescale every score to [0, 1] using the min and max over all predictions (copies)."""
    nonempty = [p[:, 4] for p in preds.values() if p.shape[0]]
    if not nonempty:
        return {k: p.copy() for k, p in preds.items()}
    all_scores = np.concatenate(nonempty)
    # Bounds start at (1, 0) as in the official code, so scores already in [0, 1] stretch to fill it.
    low, high = min(1.0, float(all_scores.min())), max(0.0, float(all_scores.max()))
    span = high - low if high > low else 1.0
    out = {}
    for key, pred in preds.items():
        scaled = pred.astype(np.float64, copy=True)
        scaled[:, 4] = (scaled[:, 4] - low) / span
        out[key] = scaled
    return out


def _setting_curve(
    preds: dict[tuple[str, str], np.ndarray], truth: dict[tuple[str, str], ImageTruth], setting: str
) -> tuple[np.ndarray, np.ndarray, int]:
    thresh = thresholds()
    pr_curve = np.zeros((thresh.shape[0], 2), dtype=np.float64)
    count_face = 0
    for key, pred in preds.items():
        image = truth[key]
        keep = image.keep[setting]
        count_face += keep.size
        if image.boxes.shape[0] == 0 or pred.shape[0] == 0:
            continue
        counted = np.zeros(image.boxes.shape[0], dtype=bool)
        counted[keep] = True
        pred_recall, is_proposal = image_eval(pred, image.boxes, counted, IOU_THRESHOLD)
        pr_curve += img_pr_info(pred[:, 4], is_proposal, pred_recall, thresh)
    proposals, recalled = pr_curve[:, 0], pr_curve[:, 1]
    # 0/0 (no proposal above a threshold) is left at 0: the envelope in voc_ap fills it.
    precision = np.divide(recalled, proposals, out=np.zeros_like(recalled), where=proposals > 0)
    recall = recalled / count_face if count_face else np.zeros_like(recalled)
    return precision, recall, count_face


def evaluate(preds: dict[tuple[str, str], np.ndarray], truth: dict[tuple[str, str], ImageTruth]) -> WiderResult:
    """Easy / Medium / Hard AP of predictions on the val images they cover.

    Args:
        preds: ``{(event, image_name): (P, 5) (x, y, w, h, score)}``, best score first.
        truth: From :func:`load_ground_truth`.

    Raises:
        DatasetError: No prediction belongs to a val image.
    """
    unknown = sorted(k for k in preds if k not in truth)
    if unknown:
        log.warning("%d prediction(s) are not WIDER FACE val images and are skipped, e.g. %s/%s",
                    len(unknown), *unknown[0])
    known = {k: v for k, v in preds.items() if k in truth}
    if not known:
        raise DatasetError("no prediction matches a WIDER FACE val image (expected <event>/<name>)")
    normed = normalize_scores(known)
    ap, precision, recall, faces = {}, {}, {}, {}
    for setting in SETTINGS:
        precision[setting], recall[setting], faces[setting] = _setting_curve(normed, truth, setting)
        ap[setting] = voc_ap(recall[setting], precision[setting])
    return WiderResult(ap, precision, recall, len(known), faces)
