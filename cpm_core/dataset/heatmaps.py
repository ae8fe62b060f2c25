"""The CPM port's heatmap targets as stored in its TFRecord: rendered with the core encoder, and decoded back
to joint positions.

Writing the port's TFRecord means rendering Gaussian targets (`cpm_core.heatmaps.encode_heatmaps`, one grid
convention for the whole project: x pixels -> (x + 0.5) * hs / size - 0.5 cells). Reading it means recovering
positions from stored *exact* Gaussians, which this decoder does better than the one for network outputs: the
log of a Gaussian is a parabola, so a parabola through the logs of three samples finds the centre exactly,
and on the grid's edge (a joint on the border of a tight crop) the known sigma gives it from two samples.
"""

from __future__ import annotations

import numpy as np

from cpm_core.heatmaps import encode_heatmaps, grid_to_input, input_to_grid


def render_heatmaps(
    keypoints: np.ndarray,
    visibility: np.ndarray,
    size: int,
    heatmap_size: int | None = None,
    sigma: float = 1.0,
    background: bool = True,
) -> np.ndarray:
    """(hs, hs, J [+1]) float32 targets for joints at `keypoints` (J, 2) in pixels of a `size` image: a
    Gaussian (sigma in cells, peak 1) per labelled joint, zeros for absent ones, background last."""
    hs = heatmap_size or size
    cells = input_to_grid(np.asarray(keypoints, dtype=np.float64).reshape(-1, 2), size / hs)
    return encode_heatmaps(cells, np.asarray(visibility).reshape(-1) > 0, hs, sigma, background)


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


def _edge_offset(inner: float, edge: float, sigma: float) -> float:
    """Offset from an edge cell of a Gaussian of known sigma, from the edge cell and its inner neighbour
    (the peak may lie beyond the grid, e.g. a joint on the border of a tight crop); 0 when undefined."""
    if min(inner, edge) <= 1e-12:
        return 0.0
    return float(np.clip(sigma**2 * (np.log(edge) - np.log(inner)) - 0.5, -0.5, 2.0))


def decode_heatmaps(
    maps: np.ndarray,
    num_joints: int,
    size: int,
    threshold: float = 0.3,
    sigma: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peak of each joint channel -> (keypoints (J, 2) in image pixels, visibility (J,), peak values (J,)).

    Sub-cell positions: a parabola through the logs of the peak and its neighbours, or, on the grid's edge,
    the Gaussian of width `sigma` through the edge cell and its inner neighbour. Joints whose peak is below
    `threshold` are absent (visibility 0, position 0, 0); others are visible (2). Extra channels (the
    background) are ignored.
    """
    hs = maps.shape[0]
    kp = np.zeros((num_joints, 2), dtype=np.float64)
    vis = np.zeros(num_joints, dtype=np.int8)
    peaks = np.zeros(num_joints, dtype=np.float64)

    def offset(line: np.ndarray, i: int) -> float:
        if 0 < i < hs - 1:
            return _refine(line[i - 1], line[i], line[i + 1])
        if hs < 2:
            return 0.0
        if i == 0:
            return -_edge_offset(line[1], line[0], sigma)
        return _edge_offset(line[i - 1], line[i], sigma)

    for j in range(num_joints):
        m = maps[:, :, j]
        r, c = np.unravel_index(int(np.argmax(m)), m.shape)
        peaks[j] = float(m[r, c])
        if peaks[j] < threshold:
            continue
        kp[j] = grid_to_input(np.array([c + offset(m[r, :], c), r + offset(m[:, c], r)]), size / hs)
        vis[j] = 2
    return kp, vis, peaks
