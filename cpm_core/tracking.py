"""Temporal helpers for video: per-joint Kalman smoothing and the port's hand self-tracking crop.

Both live in `cpm_core` (no Qt) so the app, `cpm infer` and the benchmarks smooth and track identically. They
are plain state machines fed one result per frame; the caller decides when to reset them (new source, seek).
"""

from __future__ import annotations

import numpy as np
from filterpy.kalman import KalmanFilter

from cpm_core.estimator import PoseResult
from cpm_core.preprocess import CropBox

DEFAULT_PROCESS_NOISE = 0.03
DEFAULT_MEASUREMENT_NOISE = 1.0
F_CV = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)  # dt = 1 frame
H_CV = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=float)


def _constant_velocity_filter(q: float, r: float) -> KalmanFilter:
    kf = KalmanFilter(dim_x=4, dim_z=2)
    kf.F = F_CV.copy()
    kf.H = H_CV.copy()
    kf.Q = np.eye(4) * q
    kf.R = np.eye(2) * r
    kf.P = np.eye(4) * 10.0
    return kf


class _Cohort:
    """Joints whose filters have had the same history (started together, measured on the same frames): their
    covariance and gain are the same, so one filterpy filter carries P and K for all of them and only the
    states are per joint. With a hand model every joint is measured every frame: one filter instead of 21,
    which took the Python work of smoothing from 0.5 ms a frame to a fraction of that (it competes with the
    model and the GUI for the interpreter)."""

    def __init__(self, kf: KalmanFilter, members: np.ndarray):
        self.kf = kf
        self.members = members

    def split(self, keep: np.ndarray) -> _Cohort | None:
        """Keep the members where `keep`; the rest leave as a new cohort with a copy of the filter."""
        if keep.all() or not keep.any():
            return None
        other = _Cohort(_copy_filter(self.kf), self.members[~keep])
        self.members = self.members[keep]
        return other


def _copy_filter(kf: KalmanFilter) -> KalmanFilter:
    out = _constant_velocity_filter(float(kf.Q[0, 0]), float(kf.R[0, 0]))
    out.P = kf.P.copy()
    return out


class KalmanSmoother:
    """One constant-velocity Kalman filter per joint (state x, y, vx, vy), as the port smooths hand joints.

    A joint whose measurement is missing (NaN) is predicted forward instead of updated, so a joint that drops
    out for a frame glides rather than jumps. Noise levels can be changed while running (a GUI slider).
    Joints with the same history share one filterpy filter for covariance and gain (`_Cohort`); the result is
    exactly that of a filter per joint (tests/test_tracking.py checks it against filterpy).
    """

    def __init__(self, process_noise: float = DEFAULT_PROCESS_NOISE,
                 measurement_noise: float = DEFAULT_MEASUREMENT_NOISE):
        self._q = float(process_noise)
        self._r = float(measurement_noise)
        self._cohorts: list[_Cohort] = []
        self._x = np.zeros((0, 4))  # per-joint states
        self._started: np.ndarray = np.zeros(0, bool)

    @property
    def process_noise(self) -> float:
        return self._q

    @process_noise.setter
    def process_noise(self, q: float) -> None:
        if q <= 0:
            raise ValueError(f"process noise must be positive, got {q}")
        self._q = float(q)
        for c in self._cohorts:
            c.kf.Q = np.eye(4) * self._q

    @property
    def measurement_noise(self) -> float:
        return self._r

    @measurement_noise.setter
    def measurement_noise(self, r: float) -> None:
        if r <= 0:
            raise ValueError(f"measurement noise must be positive, got {r}")
        self._r = float(r)
        for c in self._cohorts:
            c.kf.R = np.eye(2) * self._r

    def reset(self) -> None:
        """Forget all history (new source, seek): the next update starts from its measurements."""
        self._cohorts = []
        self._x = np.zeros((0, 4))
        self._started = np.zeros(0, bool)

    def update(self, keypoints: np.ndarray) -> np.ndarray:
        """Feed one frame's (J, 3) keypoints (x, y, confidence); returns smoothed (J, 3), confidence unchanged."""
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim != 2 or kp.shape[1] < 2:
            raise ValueError(f"keypoints must be (J, 3), got shape {kp.shape}")
        if len(self._x) != len(kp):
            self.reset()
            self._x = np.zeros((len(kp), 4))
            self._started = np.zeros(len(kp), bool)
        out = kp.copy()
        z = kp[:, :2]
        seen = np.isfinite(z).all(axis=1)
        cohorts: list[_Cohort] = []
        for c in self._cohorts:
            other = c.split(seen[c.members])
            cohorts += [c] if other is None else [c, other]
        for c in cohorts:
            m = c.members
            c.kf.predict()  # covariance only: the shared filter's own state stays zero
            self._x[m] = self._x[m] @ F_CV.T
            if seen[m[0]]:
                c.kf.update(np.zeros(2))
                self._x[m] += (z[m] - self._x[m] @ H_CV.T) @ c.kf.K.T
            out[m, :2] = self._x[m, :2]
        new = seen & ~self._started
        if new.any():  # first sighting: the measurement itself is the estimate
            self._x[new] = np.concatenate([z[new], np.zeros((int(new.sum()), 2))], axis=1)
            kf = _constant_velocity_filter(self._q, self._r)
            cohorts.append(_Cohort(kf, np.flatnonzero(new)))
            self._started |= new
        self._cohorts = _merge_equal(cohorts)
        return out.astype(np.float32)


def _merge_equal(cohorts: list[_Cohort]) -> list[_Cohort]:
    """Cohorts whose covariances have become equal (a joint that dropped out and came back long ago) merge
    again, so the number of filters stays small over a long video."""
    merged: list[_Cohort] = []
    for c in cohorts:
        for into in merged:
            if np.array_equal(into.kf.P, c.kf.P):
                into.members = np.sort(np.concatenate([into.members, c.members]))
                break
        else:
            merged.append(c)
    return merged


def heatmap_score(result: PoseResult) -> float:
    """Sum over joints of the last stage's heatmap maxima: the port's measure of 'a hand is in the crop'."""
    hm = np.nan_to_num(np.asarray(result.heatmaps[-1], dtype=np.float32)[..., :result.num_joints], nan=0.0)
    return float(hm.max(axis=(0, 1)).sum())


class SelfTracker:
    """The port's hand self-tracking: follow the hand with a square crop built from the previous pose.

    While lost it looks at the centred square of the frame; once the heatmaps are confident it centres the crop
    on the joints (side = 2 * max(joint extent, `min_extent`)) and smooths centre and side with an exponential
    moving average so the crop does not shake with the joints.
    """

    def __init__(self, threshold: float = 1.0, min_extent: float = 96.0, smoothing: float = 0.2,
                 joint_confidence: float = 0.1):
        self.threshold = float(threshold)
        self.min_extent = float(min_extent)
        self.smoothing = float(smoothing)  # weight of the new measurement in the moving average
        self.joint_confidence = float(joint_confidence)
        self.score = 0.0
        self._box: tuple[float, float, float] | None = None  # cx, cy, side

    @property
    def lost(self) -> bool:
        return self._box is None

    def reset(self) -> None:
        self._box = None
        self.score = 0.0

    def next_crop(self, frame_shape: tuple[int, ...]) -> CropBox:
        """The crop to run the model on for the next frame of shape (H, W[, C])."""
        h, w = frame_shape[:2]
        if self._box is None:
            return CropBox.centre_square(w, h)
        cx, cy, side = self._box
        return CropBox(cx, cy, side)

    def update(self, result: PoseResult) -> bool:
        """Take the pose found in the crop this tracker proposed; returns whether the hand is still tracked."""
        self.score = heatmap_score(result)
        kp = np.asarray(result.keypoints, dtype=np.float64)
        finite = np.isfinite(kp).all(axis=1)
        if self.score < self.threshold or not finite.any():
            self._box = None
            return False
        pts = kp[finite & (kp[:, 2] >= self.joint_confidence)]
        if len(pts) == 0:
            pts = kp[finite]
        cx, cy = pts[:, 0].mean(), pts[:, 1].mean()
        extent = max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]))
        side = 2.0 * max(extent, self.min_extent)
        if self._box is None:
            self._box = (cx, cy, side)
        else:
            a = self.smoothing
            ox, oy, os_ = self._box
            self._box = (ox + a * (cx - ox), oy + a * (cy - oy), os_ + a * (side - os_))
        return True
