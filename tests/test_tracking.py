"""KalmanSmoother and SelfTracker on synthetic tracks and heatmaps with known answers."""

import numpy as np
import pytest

from cpm_core.estimator import PoseResult
from cpm_core.preprocess import CropBox, CropTransform
from cpm_core.tracking import KalmanSmoother, SelfTracker, heatmap_score


def _track(frames: int = 200, joints: int = 3, noise: float = 3.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None]
    truth = np.stack([100 + 2.0 * t + 10 * np.arange(joints), 50 + 1.0 * t + 5 * np.arange(joints)], axis=-1)
    noisy = truth + rng.normal(0, noise, truth.shape)
    conf = np.ones((frames, joints, 1))
    return truth, np.concatenate([noisy, conf], axis=-1)


def test_kalman_reduces_jitter_on_constant_velocity_track():
    truth, noisy = _track()
    k = KalmanSmoother()
    smoothed = np.stack([k.update(f) for f in noisy])
    settle = 30
    raw_err = noisy[settle:, :, :2] - truth[settle:]
    sm_err = smoothed[settle:, :, :2] - truth[settle:]
    assert sm_err.var() < 0.5 * raw_err.var()
    assert abs(sm_err.mean()) < 1.0  # constant velocity: no lag left once settled
    np.testing.assert_array_equal(smoothed[:, :, 2], noisy[:, :, 2])  # confidences pass through


def test_kalman_first_frame_is_measurement_and_reset_forgets():
    _, noisy = _track(frames=5)
    k = KalmanSmoother()
    np.testing.assert_allclose(k.update(noisy[0]), noisy[0].astype(np.float32))
    k.update(noisy[1])
    k.reset()
    far = noisy[2].copy()
    far[:, :2] += 1000
    np.testing.assert_allclose(k.update(far), far.astype(np.float32))


def test_kalman_noise_settable_live_changes_smoothing():
    truth, noisy = _track(seed=1)
    stiff, loose = KalmanSmoother(), KalmanSmoother()
    loose.process_noise = 100.0
    loose.measurement_noise = 0.01
    a = np.stack([stiff.update(f) for f in noisy])
    b = np.stack([loose.update(f) for f in noisy])
    np.testing.assert_allclose(b[:, :, :2], noisy[:, :, :2], atol=0.1)  # trusts measurements: follows them
    assert not np.allclose(a, b)
    with pytest.raises(ValueError):
        stiff.process_noise = 0


def test_kalman_missing_joint_is_predicted():
    _, noisy = _track(frames=40, noise=0.0)
    k = KalmanSmoother()
    for f in noisy[:30]:
        k.update(f)
    gap = noisy[30].copy()
    gap[0, :2] = np.nan
    out = k.update(gap)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0, :2], noisy[30, 0, :2], atol=1.0)


def _result(keypoints: np.ndarray, peak: float, stages: int = 2, size: int = 16) -> PoseResult:
    j = len(keypoints)
    hm = np.zeros((stages, size, size, j + 1), np.float32)
    hm[-1, 3, 4, :j] = peak
    kp = np.concatenate([keypoints, np.full((j, 1), peak)], axis=1).astype(np.float32)
    return PoseResult(kp, hm, CropTransform(CropBox(50, 50, 100), 64))


def test_tracker_lost_centre_square_then_follows_and_recovers():
    tr = SelfTracker()
    assert tr.lost
    assert tr.next_crop((480, 640, 3)) == CropBox.centre_square(640, 480)
    hand = np.array([[300.0, 200.0], [340.0, 260.0], [320.0, 230.0]])
    assert tr.update(_result(hand, peak=0.9))  # 3 joints * 0.9 = 2.7 >= 1
    box = tr.next_crop((480, 640, 3))
    assert not tr.lost
    assert box.cx == pytest.approx(320.0) and box.cy == pytest.approx(230.0)
    assert box.side == pytest.approx(2 * 96)  # extent 60 < 96
    moved = hand + [100.0, 0.0]
    tr.update(_result(moved, peak=0.9))
    box2 = tr.next_crop((480, 640, 3))
    assert box2.cx == pytest.approx(320.0 + 0.2 * 100.0)  # EMA 0.2 towards the new centre
    assert not tr.update(_result(moved, peak=0.2))  # 0.6 < 1.0: lost
    assert tr.lost and tr.next_crop((480, 640, 3)) == CropBox.centre_square(640, 480)
    assert tr.update(_result(moved, peak=0.9))  # recovers at once, without smoothing from the old box
    assert tr.next_crop((480, 640, 3)).cx == pytest.approx(420.0)


def test_tracker_side_grows_with_joint_extent_and_score():
    big = np.array([[0.0, 0.0], [300.0, 100.0]])
    r = _result(big, peak=1.0)
    assert heatmap_score(r) == pytest.approx(2.0)
    tr = SelfTracker()
    tr.update(r)
    assert tr.next_crop((720, 720, 3)).side == pytest.approx(600.0)


def test_shared_cohort_filters_equal_a_filterpy_filter_per_joint():
    """The smoother shares one filter's covariance among joints with the same history; it must give exactly
    what independent per-joint constant-velocity filters give, missing joints and first sightings included."""
    from filterpy.kalman import KalmanFilter

    def joint_filter(z):
        kf = KalmanFilter(dim_x=4, dim_z=2)
        kf.F = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1]], float)
        kf.H = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], float)
        kf.Q, kf.R, kf.P = np.eye(4) * 0.05, np.eye(2) * 2.0, np.eye(4) * 10.0
        kf.x = np.array([z[0], z[1], 0.0, 0.0])
        return kf

    rng = np.random.default_rng(3)
    smoother = KalmanSmoother(process_noise=0.05, measurement_noise=2.0)
    filters: list = [None] * 5
    for t in range(40):
        kp = np.concatenate([rng.normal(20 + 2 * t, 1.5, (5, 2)), rng.random((5, 1))], axis=1)
        if 8 <= t < 12:
            kp[1, :2] = np.nan  # drops out for four frames
        if t < 6:
            kp[4, :2] = np.nan  # first seen late
        if t == 20:  # the GUI's noise slider moves mid-stream
            smoother.process_noise = 0.2
            for f in filters:
                f.Q = np.eye(4) * 0.2
        expected = kp.copy()
        for j in range(5):
            z = kp[j, :2]
            if filters[j] is None:
                if np.isfinite(z).all():
                    filters[j] = joint_filter(z)
                continue
            filters[j].predict()
            if np.isfinite(z).all():
                filters[j].update(z)
            expected[j, :2] = filters[j].x[:2]
        np.testing.assert_allclose(smoother.update(kp), expected.astype(np.float32), rtol=1e-6, atol=1e-4)
