"""Gaussian joint heatmaps as the CPM port builds them, and joint positions decoded back from them.

The port's TFRecord stores targets, not coordinates, so writing it means rendering these maps and reading it
means finding their peaks. Convention: pixel centres; a heatmap of `hs` cells over an image of `size` pixels
puts pixel coordinate x at cell (x + 0.5) * hs / size - 0.5.
"""

from __future__ import annotations

import numpy as np


def to_cells(xy: np.ndarray, size: int, heatmap_size: int) -> np.ndarray:
    """Image pixel coordinates -> heatmap cell coordinates."""
    return (np.asarray(xy, dtype=np.float64) + 0.5) * (heatmap_size / size) - 0.5


def from_cells(cells: np.ndarray, size: int, heatmap_size: int) -> np.ndarray:
    """Heatmap cell coordinates -> image pixel coordinates."""
    return (np.asarray(cells, dtype=np.float64) + 0.5) * (size / heatmap_size) - 0.5


def render_heatmaps(
    keypoints: np.ndarray,
    visibility: np.ndarray,
    size: int,
    heatmap_size: int | None = None,
    sigma: float = 1.0,
    background: bool = True,
) -> np.ndarray:
    """(hs, hs, J [+1]) float32 maps: a Gaussian (sigma in cells, peak 1) per labelled joint, zeros for absent
    joints, and a last background channel = 1 - max over the joint maps (the port's target)."""
    hs = heatmap_size or size
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    vis = np.asarray(visibility).reshape(-1)
    cells = to_cells(kp, size, hs)
    grid = np.arange(hs, dtype=np.float64)
    maps = np.zeros((hs, hs, len(kp) + (1 if background else 0)), dtype=np.float32)
    for j, ((cx, cy), v) in enumerate(zip(cells, vis, strict=True)):
        if v <= 0 or not np.isfinite([cx, cy]).all():
            continue
        gx = np.exp(-((grid - cx) ** 2) / (2.0 * sigma**2))
        gy = np.exp(-((grid - cy) ** 2) / (2.0 * sigma**2))
        maps[:, :, j] = np.outer(gy, gx)
    if background:
        joint_max = maps[:, :, :-1].max(axis=2) if len(kp) else np.zeros((hs, hs), np.float32)
        maps[:, :, -1] = 1.0 - joint_max
    return maps


def _refine(left: float, centre: float, right: float) -> float:
    """Sub-cell offset of a Gaussian peak: a parabola through the logs of three samples (exact for a
    Gaussian); 0 when a neighbour is missing or the fit is not a maximum."""
    if min(left, centre, right) <= 1e-12:
        return 0.0
    a, b, c = np.log(left), np.log(centre), np.log(right)
    denom = a - 2.0 * b + c
    if denom >= 0:
        return 0.0
    return float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5))


def decode_heatmaps(
    maps: np.ndarray,
    num_joints: int,
    size: int,
    threshold: float = 0.3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peak of each joint channel -> (keypoints (J, 2) in image pixels, visibility (J,), peak values (J,)).

    Joints whose peak is below `threshold` are absent (visibility 0, position 0, 0); others are visible (2).
    Extra channels (the background) are ignored.
    """
    hs = maps.shape[0]
    kp = np.zeros((num_joints, 2), dtype=np.float64)
    vis = np.zeros(num_joints, dtype=np.int8)
    peaks = np.zeros(num_joints, dtype=np.float64)
    for j in range(num_joints):
        m = maps[:, :, j]
        r, c = np.unravel_index(int(np.argmax(m)), m.shape)
        peaks[j] = float(m[r, c])
        if peaks[j] < threshold:
            continue
        dx = _refine(m[r, c - 1], m[r, c], m[r, c + 1]) if 0 < c < hs - 1 else 0.0
        dy = _refine(m[r - 1, c], m[r, c], m[r + 1, c]) if 0 < r < hs - 1 else 0.0
        kp[j] = from_cells(np.array([c + dx, r + dy]), size, hs)
        vis[j] = 2
    return kp, vis, peaks
