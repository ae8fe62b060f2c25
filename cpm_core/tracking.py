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


def _constant_velocity_filter(q: float, r: float) -> KalmanFilter:
    kf = KalmanFilter(dim_x=4, dim_z=2)
    kf.F = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)  # dt = 1 frame
    kf.H = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=float)
    kf.Q = np.eye(4) * q
    kf.R = np.eye(2) * r
    kf.P = np.eye(4) * 10.0
    return kf


class KalmanSmoother:
    """One constant-velocity Kalman filter per joint (state x, y, vx, vy), as the port smooths hand joints.

    A joint whose measurement is missing (NaN) is predicted forward instead of updated, so a joint that drops
    out for a frame glides rather than jumps. Noise levels can be changed while running (a GUI slider).
    """

    def __init__(self, process_noise: float = DEFAULT_PROCESS_NOISE,
                 measurement_noise: float = DEFAULT_MEASUREMENT_NOISE):
        self._q = float(process_noise)
        self._r = float(measurement_noise)
        self._filters: list[KalmanFilter] = []
        self._started: np.ndarray = np.zeros(0, bool)

    @property
    def process_noise(self) -> float:
        return self._q

    @process_noise.setter
    def process_noise(self, q: float) -> None:
        if q <= 0:
            raise ValueError(f"process noise must be positive, got {q}")
        self._q = float(q)
        for kf in self._filters:
            kf.Q = np.eye(4) * self._q

    @property
    def measurement_noise(self) -> float:
        return self._r

    @measurement_noise.setter
    def measurement_noise(self, r: float) -> None:
        if r <= 0:
            raise ValueError(f"measurement noise must be positive, got {r}")
        self._r = float(r)
        for kf in self._filters:
            kf.R = np.eye(2) * self._r

    def reset(self) -> None:
        """Forget all history (new source, seek): the next update starts from its measurements."""
        self._filters = []
        self._started = np.zeros(0, bool)

    def update(self, keypoints: np.ndarray) -> np.ndarray:
        """Feed one frame's (J, 3) keypoints (x, y, confidence); returns smoothed (J, 3), confidence unchanged."""
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim != 2 or kp.shape[1] < 2:
            raise ValueError(f"keypoints must be (J, 3), got shape {kp.shape}")
        if len(self._filters) != len(kp):
            self._filters = [_constant_velocity_filter(self._q, self._r) for _ in range(len(kp))]
            self._started = np.zeros(len(kp), bool)
        out = kp.copy()
        for j, kf in enumerate(self._filters):
            z = kp[j, :2]
            seen = bool(np.isfinite(z).all())
            if not self._started[j]:
                if seen:
                    kf.x = np.array([z[0], z[1], 0.0, 0.0])
                    kf.P = np.eye(4) * 10.0
                    self._started[j] = True
                continue  # first sighting: the measurement itself is the estimate
            kf.predict()
            if seen:
                kf.update(z)
            out[j, :2] = kf.x[:2]
        return out.astype(np.float32)


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
