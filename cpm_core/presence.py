"""Is there a subject in the crop at all? A presence score in [0, 1] read from the model's own heatmaps.

A CPM always answers with 21 joints, even on a wall: the arg-max of a map is somewhere. What differs is how much
of the last stage's map the net claims for joints. Its targets (`cpm_core.heatmaps.encode_heatmaps`) are one
Gaussian of height 1 per visible joint and a background channel of 1 - max over joints, so a net that sees a
hand (at the training crop margin) draws about a dozen or more joint blobs and marks their cells as
not-background; on a hand-free crop it marks few or none.

The rule (`presence_score`):
1. foreground = cells of the last stage whose background channel is below 0.5 (the net's own "not background";
   for heatmaps without a background channel, 1 - max over joints stands in for it);
2. counted in *joint blobs*: divided by the area where one target Gaussian of the model's sigma is above half its
   height (2 ln 2 pi sigma^2 cells, 17.4 cells at sigma 2), so the count does not depend on the grid size or
   sigma of a model trained here with these targets;
3. times a shape factor that only bites on maps that are not peaked at all (noise, a flat map): the peak-weighted
   mean over joints of the fraction of each joint map's positive mass within 2 sigma of its peak (0.86 for a target
   Gaussian, 0.04 for uniform noise on a 32-cell grid), divided by SHAPE_FLOOR, capped at 1 and squared (noise
   whose background channel says "joint everywhere" would otherwise count as dozens of blobs);
4. mapped to [0, 1] by n^k / (n^k + m^k): 0.5 at MIDPOINT_BLOBS joint blobs, STEEPNESS sets how fast it saturates.

Why this and not the others measured (default hand model, hand-rt-128x3; training data only: 200 hands of
`hand_more/train.json` and 100 of `hand_pseudo/train.json` cropped and turned as the app does, against the 82
background images with index % TUNING_EVERY == 0 run whole as `cpm infer` does, plus 164 hand-sized crops of them;
best balanced threshold, fraction right on each side):

    signal                                               hand-free   hands
    foreground of the background channel (this rule)       0.943     0.943
    mean last-stage peak height over joints                0.915     0.917
    mean peak x peak concentration                         0.898     0.903
    mean peak x stage agreement (stage 1 vs last peak)     0.894     0.910
    geometric mean of peak height and foreground           0.927     0.937

The background channel integrates the evidence of all joints and is the easiest thing the net learns, so it holds
up on hands the net only half recognises (its joints' peaks are low, but the hand area is marked); adding peak
height or stage agreement did not help on training data. The balanced threshold there was 6.43 joint blobs,
hence MIDPOINT_BLOBS = 6.4. The shape factor changes nothing on the training hands at SHAPE_FLOOR = 0.3 (their
concentration is >= 0.43 for 95 in 100, never below 0.3; hand-free crops' median is 0.07) and sends noise to ~0.
None of these parameters were chosen by looking at a val file.

Counted by `bench/presence.py` with the default hand model (hand-rt-128x3, float32): held-out backgrounds below
0.5 for 304 of 325 (0.935; the 82 tuning images 78, 0.951; all 407: 382, 0.939); labelled hands above 0.5 for
208 of 230 on `hand_more/val.json` (0.904) and 102 of 102 on `hand_pseudo/val.json`, 310 of 332 together (0.934).
The rule reads only what any model trained on these targets draws (joint blobs of its own sigma, the background
channel), so it should carry over to a new model; re-run the bench with `--model` to check.
"""

from __future__ import annotations

import math

import numpy as np

MIDPOINT_BLOBS = 6.4  # joint blobs of foreground at which presence is 0.5 (balanced threshold on training data)
STEEPNESS = 3.0  # presence 0.89 at twice the midpoint, 0.11 at half of it
SHAPE_FLOOR = 0.3  # peak concentration (mass within 2 sigma of the peak) at and above which shape does not count
BACKGROUND_LEVEL = 0.5  # a cell is foreground where the background channel is below this
TUNING_EVERY = 5  # backgrounds/images/ (sorted) with index % 5 == 0 chose the parameters; benches hold them out
THRESHOLD = 0.5  # below this the pipeline treats a result as "no subject" (nothing drawn, trackers search again)


def blob_area(sigma: float) -> float:
    """Cells where one target Gaussian of `sigma` cells is above half its height: pi r^2 with r^2 = 2 ln 2 sigma^2."""
    return 2.0 * math.log(2.0) * math.pi * float(sigma) ** 2


def foreground_blobs(heatmaps: np.ndarray, num_joints: int, sigma: float) -> float:
    """Cells of the last stage the net marks as not-background, in joint blobs (see the module docstring)."""
    last = np.nan_to_num(np.asarray(heatmaps, np.float32)[-1], nan=0.0, posinf=0.0, neginf=0.0)
    if last.shape[-1] > num_joints:
        background = last[..., num_joints]
    else:
        background = 1.0 - last[..., :num_joints].max(axis=-1)
    return float((background < BACKGROUND_LEVEL).sum()) / blob_area(sigma)


def peak_concentration(heatmaps: np.ndarray, num_joints: int, sigma: float) -> float:
    """Peak-weighted mean over joints of the share of each last-stage joint map's positive mass lying within
    2 sigma of its arg-max: 0.86 for a target Gaussian, about (area of that disc) / (map area) for noise."""
    maps = np.nan_to_num(np.asarray(heatmaps, np.float32)[-1][..., :num_joints], nan=0.0, posinf=0.0, neginf=0.0)
    h, w, j = maps.shape
    positive = np.clip(maps, 0.0, None)
    total = positive.sum(axis=(0, 1))
    py, px = np.divmod(maps.reshape(-1, j).argmax(axis=0), w)
    yy, xx = np.mgrid[:h, :w]
    near = (yy[..., None] - py) ** 2 + (xx[..., None] - px) ** 2 <= (2.0 * sigma) ** 2
    conc = np.where(total > 0, (positive * near).sum(axis=(0, 1)) / np.where(total > 0, total, 1.0), 0.0)
    peaks = positive.max(axis=(0, 1))
    return float((peaks * conc).sum() / peaks.sum()) if peaks.sum() > 0 else 0.0


def presence_blobs(heatmaps: np.ndarray, num_joints: int, sigma: float = 2.0) -> float:
    """The evidence `presence_score` maps to [0, 1]: foreground joint blobs times the shape factor (steps 1-3 of
    the module docstring). Empty or all-NaN heatmaps give 0."""
    hm = np.asarray(heatmaps)
    if hm.ndim != 4 or hm.size == 0 or num_joints <= 0 or hm.shape[-1] < num_joints:
        return 0.0
    n = foreground_blobs(hm, num_joints, sigma)
    return float(n * min(1.0, peak_concentration(hm, num_joints, sigma) / SHAPE_FLOOR) ** 2)


def presence_score(heatmaps: np.ndarray, num_joints: int, sigma: float = 2.0, midpoint: float = MIDPOINT_BLOBS,
                   steepness: float = STEEPNESS) -> float:
    """Presence in [0, 1] of a subject in the crop from its (stages, h, w, C) heatmaps (only the last stage is
    read); `sigma`: the training targets' sigma in heatmap cells; `midpoint`: the joint blobs at which it is 0.5
    (a model card may carry its own, see `balanced_midpoint`). Empty or all-NaN heatmaps give 0."""
    n = presence_blobs(heatmaps, num_joints, sigma)
    if n <= 0.0:
        return 0.0
    return float(1.0 / (1.0 + (midpoint / n) ** steepness))


def balanced_midpoint(subject_blobs: np.ndarray, free_blobs: np.ndarray) -> tuple[float, float, float]:
    """The midpoint (in joint blobs) that tells crops with a subject from subject-free ones best on both sides:
    the cut maximising the smaller of the two fractions right (subjects above it, subject-free below it; ties: the
    larger sum), placed at the geometric mean of the two neighbouring values. Returns (midpoint, fraction of
    subjects above, fraction of subject-free below).

    Why per model: the rule reads what a model trained on these targets draws, but how much foreground a model
    marks on a hand-free image depends on what it was trained on (the hand model v2, fine-tuned only on crops
    holding a hand, marks about twice v1's on backgrounds). The midpoint is therefore measured for each model on
    its *training* data (`bench/presence.py --calibrate`) and stored in its card (`decoding.presence_midpoint`)."""
    pos = np.sort(np.asarray(subject_blobs, np.float64).ravel())
    neg = np.sort(np.asarray(free_blobs, np.float64).ravel())
    if not len(pos) or not len(neg):
        raise ValueError("a balanced midpoint needs both crops with subjects and subject-free ones")
    values = np.unique(np.concatenate([pos, neg]))
    best = ((-1.0, -1.0), 0.0, 0.0, 0.0)
    for lo, hi in zip(values[:-1], values[1:]):
        cut = math.sqrt(max(lo, 1e-6) * hi)
        above = float((pos > cut).mean())
        below = float((neg < cut).mean())
        key = (min(above, below), above + below)  # the worse side first, then the total
        if key > best[0]:
            best = (key, cut, above, below)
    if best[0][0] < 0:  # a single distinct value
        cut = float(values[0])
        best = (best[0], cut, float((pos > cut).mean()), float((neg < cut).mean()))
    return best[1], best[2], best[3]
