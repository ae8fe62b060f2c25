"""Heatmap encoding (training targets) and decoding (joints with sub-pixel peaks and confidences).

Grid convention, used everywhere: heatmap cell i covers input pixels [i*stride, (i+1)*stride), so its centre
is input pixel (i + 0.5) * stride - 0.5 (pixel centres at integers). Keeping one convention is what keeps
encode -> decode exact to a fraction of a pixel.
"""

from __future__ import annotations

import numpy as np

DEFAULT_SIGMA = 1.0  # heatmap cells, as in the port


def input_to_grid(xy: np.ndarray, stride: int) -> np.ndarray:
    return (np.asarray(xy, dtype=np.float64) + 0.5) / stride - 0.5


def grid_to_input(xy: np.ndarray, stride: int) -> np.ndarray:
    return (np.asarray(xy, dtype=np.float64) + 0.5) * stride - 0.5


def encode_heatmaps(grid_xy: np.ndarray, visible: np.ndarray, size: int, sigma: float = DEFAULT_SIGMA,
                    background: bool = True) -> np.ndarray:
    """Gaussian targets (size, size, J [+1 background]) for joints at `grid_xy` (J, 2) in grid cells.

    Joints with visible == False get an all-zero map: an absent joint teaches the model nothing about where
    it is. The background channel is 1 - max over joint maps, as in the port.
    """
    grid_xy = np.asarray(grid_xy, dtype=np.float32).reshape(-1, 2)
    visible = np.asarray(visible, dtype=bool).reshape(-1)
    coords = np.arange(size, dtype=np.float32)
    dx = coords[None, :] - grid_xy[:, 0:1]  # (J, size)
    dy = coords[None, :] - grid_xy[:, 1:2]
    gx = np.exp(-(dx * dx) / (2 * sigma * sigma))
    gy = np.exp(-(dy * dy) / (2 * sigma * sigma))
    maps = gy[:, :, None] * gx[:, None, :]  # (J, size, size)
    maps[~visible] = 0.0
    maps = np.transpose(maps, (1, 2, 0))
    if background:
        bg = 1.0 - (maps.max(axis=-1, keepdims=True) if maps.shape[-1] else np.zeros((size, size, 1)))
        maps = np.concatenate([maps, bg], axis=-1)
    return maps.astype(np.float32)


def decode_heatmaps(heatmaps: np.ndarray, num_joints: int | None = None) -> np.ndarray:
    """Peaks of (..., h, w, C) heatmaps -> (..., J, 3): x, y in grid cells and a confidence in [0, 1].

    The first `num_joints` channels are decoded (default: all but the background). Sub-pixel refinement fits
    a parabola through the peak and its neighbours along each axis. A map holding NaN or inf is reported with
    confidence 0 at the grid centre rather than a garbage position.
    """
    hm = np.asarray(heatmaps, dtype=np.float32)
    if hm.ndim < 3:
        raise ValueError(f"heatmaps must be (..., h, w, C), got shape {hm.shape}")
    h, w, c = hm.shape[-3:]
    j = c - 1 if num_joints is None else num_joints
    if not 0 < j <= c:
        raise ValueError(f"cannot decode {j} joints from {c} heatmap channels")
    lead = hm.shape[:-3]
    maps = np.moveaxis(hm[..., :j], -1, -3).reshape(-1, h, w)  # (N, h, w)
    bad = ~np.isfinite(maps).all(axis=(1, 2))
    maps = np.where(np.isfinite(maps), maps, 0.0)
    flat = maps.reshape(len(maps), -1)
    idx = flat.argmax(axis=1)
    py, px = np.divmod(idx, w)
    peak = flat[np.arange(len(flat)), idx]
    n = np.arange(len(maps))

    def offset(v_minus: np.ndarray, v0: np.ndarray, v_plus: np.ndarray) -> np.ndarray:
        denom = v_minus - 2.0 * v0 + v_plus
        with np.errstate(divide="ignore", invalid="ignore"):
            off = np.where(denom < -1e-12, 0.5 * (v_minus - v_plus) / denom, 0.0)
        return np.clip(off, -0.5, 0.5)

    xm, xp = np.clip(px - 1, 0, w - 1), np.clip(px + 1, 0, w - 1)
    ym, yp = np.clip(py - 1, 0, h - 1), np.clip(py + 1, 0, h - 1)
    ox = np.where((px > 0) & (px < w - 1), offset(maps[n, py, xm], peak, maps[n, py, xp]), 0.0)
    oy = np.where((py > 0) & (py < h - 1), offset(maps[n, ym, px], peak, maps[n, yp, px]), 0.0)
    x = px + ox
    y = py + oy
    conf = np.clip(peak, 0.0, 1.0)
    x = np.where(bad, (w - 1) / 2.0, x)
    y = np.where(bad, (h - 1) / 2.0, y)
    conf = np.where(bad, 0.0, conf)
    out = np.stack([x, y, conf], axis=-1).astype(np.float32)
    return out.reshape(*lead, j, 3)


def stage_peak_confidence(stage_heatmaps: np.ndarray, num_joints: int) -> np.ndarray:
    """Mean over joints of each stage's peak value: how much each stage sharpens the previous one."""
    hm = np.nan_to_num(np.asarray(stage_heatmaps, dtype=np.float32)[..., :num_joints], nan=0.0)
    return hm.max(axis=(-3, -2)).mean(axis=-1)
