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


def block_bootstrap_indices(n: int, resamples: int = 2000, block: int | None = None,
                            seed: int = 0) -> tuple[int, np.ndarray]:
    """(block length, (resamples, n) indices) of a circular block bootstrap over n subjects in dataset order:
    runs of `block` consecutive subjects (default ceil(n ** (1/3))), deterministic for a given seed. Shared by
    `pck_confidence_interval` and benches that resample several runs on the same subjects (paired)."""
    block = int(np.ceil(n ** (1 / 3))) if block is None else max(1, min(int(block), n))
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n, size=(resamples, -(-n // block)))
    return block, ((starts[:, :, None] + np.arange(block)) % n).reshape(resamples, -1)[:, :n]


def pck_confidence_interval(pred: np.ndarray, gt: np.ndarray, labelled: np.ndarray, norm: np.ndarray,
                            threshold: float = 0.2, level: float = 0.95, resamples: int = 2000,
                            block: int | None = None, seed: int = 0) -> tuple[float, float, int]:
    """Bootstrap interval (low, high) of the mean PCK, and the block length used.

    Why: a validation set of one scene's video frames is small and its frames are not independent, so two
    models (or a model and a target) that differ by less than this interval cannot be told apart on it.
    Subjects are resampled in runs of `block` consecutive ones (circular block bootstrap, in dataset order),
    which keeps the correlation between neighbouring frames; the default block is ceil(n ** (1/3)), the usual
    rule for it. `block=1` is the plain bootstrap for independent images. Deterministic for a given seed."""
    err = joint_errors(pred, gt, norm)
    lab = np.asarray(labelled, dtype=bool)
    hits = ((err <= threshold) & lab).sum(axis=1).astype(np.float64)
    counts = lab.sum(axis=1).astype(np.float64)
    n = len(counts)
    if n == 0 or counts.sum() == 0:
        return float("nan"), float("nan"), 0
    block, idx = block_bootstrap_indices(n, resamples, block, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = hits[idx].sum(axis=1) / counts[idx].sum(axis=1)
    means = means[np.isfinite(means)]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high), block
