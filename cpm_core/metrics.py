"""Keypoint metrics as pure functions (no model, no I/O), shared by training, `cpm eval` and the GUI.

PCK here is bbox-normalised: a joint is correct when it lies within `threshold` times the longer side of
the subject's box from the label. Only labelled joints (visibility > 0) count.
"""

from __future__ import annotations

import numpy as np


def joint_errors(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """(N, J) distances between predicted and labelled joints, divided by each subject's box size."""
    pred = np.asarray(pred, dtype=np.float64)[..., :2]
    gt = np.asarray(gt, dtype=np.float64)[..., :2]
    norm = np.maximum(np.asarray(norm, dtype=np.float64).reshape(-1, 1), 1e-9)
    return np.linalg.norm(pred - gt, axis=-1) / norm


def pck(pred: np.ndarray, gt: np.ndarray, labelled: np.ndarray, norm: np.ndarray,
        threshold: float = 0.2) -> tuple[np.ndarray, float]:
    """Per-joint PCK (J,) (NaN for a joint never labelled) and the mean over all labelled joints."""
    err = joint_errors(pred, gt, norm)
    lab = np.asarray(labelled, dtype=bool)
    hit = (err <= threshold) & lab
    counts = lab.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(counts > 0, hit.sum(axis=0) / np.maximum(counts, 1), np.nan)
    mean = float(hit.sum() / lab.sum()) if lab.any() else float("nan")
    return per_joint, mean


def end_point_error(pred: np.ndarray, gt: np.ndarray, labelled: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-joint and mean distance in pixels over labelled joints."""
    d = np.linalg.norm(np.asarray(pred, np.float64)[..., :2] - np.asarray(gt, np.float64)[..., :2], axis=-1)
    lab = np.asarray(labelled, dtype=bool)
    counts = lab.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(counts > 0, (d * lab).sum(axis=0) / np.maximum(counts, 1), np.nan)
    mean = float(d[lab].mean()) if lab.any() else float("nan")
    return per_joint, mean


def pck_curve(pred: np.ndarray, gt: np.ndarray, labelled: np.ndarray, norm: np.ndarray,
              thresholds: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean PCK at each threshold (default 0 to 0.5 in steps of 0.01)."""
    thresholds = np.linspace(0, 0.5, 51) if thresholds is None else np.asarray(thresholds)
    err = joint_errors(pred, gt, norm)[np.asarray(labelled, dtype=bool)]
    values = np.array([(err <= t).mean() if err.size else np.nan for t in thresholds])
    return thresholds, values
