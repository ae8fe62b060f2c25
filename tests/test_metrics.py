"""The PCK confidence interval: it brackets the estimate, shrinks with more subjects, and widens when
neighbouring frames are alike (which is why it resamples runs of consecutive subjects)."""

from __future__ import annotations

import numpy as np

from cpm_core.metrics import pck, pck_confidence_interval

J = 21


def subjects(hit_rows: np.ndarray) -> tuple:
    """Predictions that hit (error 0) or miss (error 1 box side) each joint as `hit_rows` (N, J) says."""
    n = len(hit_rows)
    gt = np.zeros((n, J, 2))
    pred = gt.copy()
    pred[..., 0] = np.where(hit_rows, 0.0, 10.0)
    return pred, gt, np.ones((n, J), bool), np.full(n, 10.0)


def test_interval_brackets_the_estimate_and_shrinks_with_more_subjects():
    rng = np.random.default_rng(1)
    widths = []
    for n in (25, 400):
        args = subjects(rng.random((n, J)) < rng.uniform(0.5, 1.0, (n, 1)))
        _, mean = pck(*args)
        low, high, block = pck_confidence_interval(*args, block=1)
        assert low < mean < high and block == 1
        widths.append(high - low)
    assert widths[1] < 0.5 * widths[0]  # ~1/sqrt(n): 16x the subjects, a quarter of the width


def test_runs_of_alike_frames_widen_the_interval():
    """Each subject repeated 8 times in a row, as consecutive video frames of a slow hand: resampling single
    subjects would treat the copies as independent evidence; runs of 8 do not."""
    rng = np.random.default_rng(2)
    rows = np.repeat(rng.random((20, J)) < rng.uniform(0.3, 1.0, (20, 1)), 8, axis=0)
    args = subjects(rows)
    low1, high1, _ = pck_confidence_interval(*args, block=1)
    low8, high8, _ = pck_confidence_interval(*args, block=8)
    assert high8 - low8 > 1.8 * (high1 - low1)


def test_interval_defaults_and_edge_cases():
    args = subjects(np.ones((100, J), bool))
    assert pck_confidence_interval(*args) == (1.0, 1.0, 5)  # every joint right; block ceil(100 ** (1/3)) = 5
    rng = np.random.default_rng(3)
    args = subjects(rng.random((60, J)) < 0.7)
    assert pck_confidence_interval(*args, seed=4) == pck_confidence_interval(*args, seed=4)
    pred, gt, lab, norm = args
    low, high, _ = pck_confidence_interval(pred, gt, np.zeros_like(lab), norm)
    assert np.isnan(low) and np.isnan(high)
    half = pck_confidence_interval(*args, level=0.5)
    full = pck_confidence_interval(*args)
    assert full[0] < half[0] < half[1] < full[1]
