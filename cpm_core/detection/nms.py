"""Overlap and non-maximum suppression for boxes given as (x0, y0, x1, y1).

SSD detectors fire on many neighbouring anchors for one object. MediaPipe merges them with *weighted* NMS
(the kept box is the score-weighted mean of its cluster), which is steadier from frame to frame than keeping
the single best anchor; plain NMS is kept for detectors whose boxes are already few (HOG).
"""

from __future__ import annotations

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection over union of boxes (x0, y0, x1, y1)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Indices of the boxes kept by greedy NMS, best score first."""
    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    iou = iou_matrix(boxes, boxes)
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        order = [j for j in order if iou[i, j] <= iou_threshold]
    return keep


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float,
                 extras: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """MediaPipe's weighted NMS: take the best remaining box, gather every remaining box overlapping it by more
    than `iou_threshold` (itself included), and replace it by their score-weighted mean; the cluster keeps the
    best score. `extras` (N, K), e.g. keypoints, are averaged with the same weights.

    Returns (boxes (M, 4), scores (M,), extras (M, K) or None), best first.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    ex = None if extras is None else np.asarray(extras, dtype=np.float64).reshape(len(boxes), -1)
    remaining = np.argsort(-scores, kind="stable")
    out_b, out_s, out_e = [], [], []
    while len(remaining):
        best = remaining[0]
        overlap = iou_matrix(boxes[best], boxes[remaining])[0]
        members = remaining[overlap > iou_threshold]
        members = members if len(members) else remaining[:1]
        w = scores[members]
        out_b.append((boxes[members] * w[:, None]).sum(0) / w.sum())
        out_s.append(scores[best])
        if ex is not None:
            out_e.append((ex[members] * w[:, None]).sum(0) / w.sum())
        remaining = remaining[overlap <= iou_threshold]
        if best in remaining:  # a degenerate (zero-area) best box overlaps nothing, not even itself
            remaining = remaining[remaining != best]
    k = 0 if ex is None else ex.shape[1]
    return (np.array(out_b).reshape(-1, 4), np.array(out_s),
            None if ex is None else np.array(out_e).reshape(-1, k))
