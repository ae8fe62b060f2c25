"""Matching this frame's detections to the subjects being tracked: a cost per (track, detection) pair and
the Hungarian assignment that minimises the total.

The cost mixes box overlap with centre distance (in box sizes) because IoU alone is zero for every pair once a
small, fast subject (a hand) moves more than its own width between frames, and then it could not tell a near
box from a far one. Where both sides have keypoints, the mean joint distance (in box sizes) joins in: two
hands crossing can overlap entirely while their joints still tell them apart.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from cpm_core.detection.nms import iou_matrix

NO_MATCH = 1e6


def _size(xyxy: np.ndarray) -> np.ndarray:
    wh = np.clip(xyxy[:, 2:] - xyxy[:, :2], 1e-6, None)
    return np.sqrt(wh[:, 0] * wh[:, 1])


def association_cost(track_boxes: np.ndarray, det_boxes: np.ndarray,
                     track_keypoints: np.ndarray | None = None, det_keypoints: np.ndarray | None = None,
                     keypoint_weight: float = 0.5, min_confidence: float = 0.1) -> np.ndarray:
    """(T, D) cost = (1 - IoU) + centre distance / box size [+ w * mean joint distance / box size].

    Boxes are (x0, y0, x1, y1); keypoints (T, J, 3) and (D, J, 3) with a confidence column (rows of NaN for
    tracks without a pose). The box size is the geometric mean of width and height, averaged over the pair.
    """
    tb = np.asarray(track_boxes, dtype=np.float64).reshape(-1, 4)
    db = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    cost = 1.0 - iou_matrix(tb, db)
    tc, dc = (tb[:, :2] + tb[:, 2:]) / 2, (db[:, :2] + db[:, 2:]) / 2
    size = (_size(tb)[:, None] + _size(db)[None, :]) / 2
    cost += np.linalg.norm(tc[:, None] - dc[None, :], axis=-1) / size
    if track_keypoints is not None and det_keypoints is not None and len(tb) and len(db):
        tk = np.asarray(track_keypoints, dtype=np.float64)
        dk = np.asarray(det_keypoints, dtype=np.float64)
        ok = ((tk[:, None, :, 2] >= min_confidence) & (dk[None, :, :, 2] >= min_confidence)
              & np.isfinite(tk[:, None, :, :2]).all(-1) & np.isfinite(dk[None, :, :, :2]).all(-1))
        dist = np.linalg.norm(np.nan_to_num(tk[:, None, :, :2]) - np.nan_to_num(dk[None, :, :, :2]), axis=-1)
        n = ok.sum(-1)
        mean = np.where(n > 0, (dist * ok).sum(-1) / np.maximum(n, 1), 0.0)
        cost += keypoint_weight * mean / size
    return cost


def assign(cost: np.ndarray, max_cost: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Hungarian assignment on a (T, D) cost; pairs costing more than `max_cost` are not matched.

    Returns (matches [(track, detection)], unmatched tracks, unmatched detections).
    """
    cost = np.asarray(cost, dtype=np.float64)
    t, d = cost.shape
    if t == 0 or d == 0:
        return [], list(range(t)), list(range(d))
    gated = np.where(np.isfinite(cost) & (cost <= max_cost), cost, NO_MATCH)
    rows, cols = linear_sum_assignment(gated)
    matches = [(int(r), int(c)) for r, c in zip(rows, cols) if gated[r, c] < NO_MATCH]
    mt = {m[0] for m in matches}
    md = {m[1] for m in matches}
    return matches, [i for i in range(t) if i not in mt], [j for j in range(d) if j not in md]
