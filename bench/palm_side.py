"""Can the palm detector's seven keypoints tell a hand's side better than the pipeline's rule does?

    python bench/palm_side.py [--data FILE ...]      (default: the three hand training sets)

The app mirrors a hand for a canonical model when the palm's index-finger base lies right of its little-finger
base once the palm is turned upright (`cpm_core.orientation.thumb_on_right`, `cpm_core.upright.palm_hint`). That
side is wrong for 9% of the hands of hand_more/val and 12-19% of training hands (bench/palm_gap.py), and a wrong
side costs a canonical model most of the hand (PCK 0.34 against 0.92). For every labelled hand of the given sets
(training data only: the rule would be chosen here) this finds the palm as `palm_hint` does, turns its keypoints
upright (wrist at the origin, wrist-to-middle-base length 1) and compares with the labels' side:
- the pipeline's rule;
- the sign of each keypoint's x alone;
- a logistic regression over the seven x (and over all 14 coordinates), scored leave-one-source-out.

Measured 2026-12-02 on hand_pseudo/train + hand_more/train + hand_more/train2 (2712 hands with a palm): the rule
is right for 0.815; a logistic model over all 14 coordinates for 0.809 (over the x alone 0.809), every single
keypoint 0.81-0.82. The palm's geometry carries no more of the side than the rule already reads; even palms
whose index and little-finger bases lie far apart are right only 0.81-0.89 of the time. The side needs the
image: see training/recipes/hand_v6.toml for what teaching it to the net did.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
TRAINING_SETS = [DATA / "hand_pseudo" / "train.json", DATA / "hand_more" / "train.json",
                 DATA / "hand_more" / "train2.json"]


def collect(paths: list[str], margin: float = 1.6) -> list[dict]:
    """One row per hand with a palm: its source, upright normalised palm keypoints (14), the labels' side and the
    rule's side."""
    from cpm_core.detection.palm import PALM_FAR_SIDE, PALM_MIDDLE, PALM_THUMB_SIDE, PALM_WRIST
    from cpm_core.orientation import angle_of, label_angle, label_mirror, thumb_on_right
    from cpm_core.preprocess import CropBox
    from cpm_core.skeleton import HAND_21
    from cpm_core.upright import best_palm, default_palm_detector
    from training.data import iter_subjects, load_datasets

    palm = default_palm_detector()
    if palm is None:
        raise SystemExit("the bundled palm detector cannot be loaded here")
    rows = []
    for path in paths:
        for sample, frame, usable in iter_subjects(load_datasets([str(path)]), 3):
            for inst in usable:
                x, y, w, h = inst.bbox
                box = CropBox.around(x, y, x + w, y + h, margin)
                vis = inst.visibility > 0
                la = label_angle(inst.keypoints, vis, HAND_21) or 0.0
                side = label_mirror(inst.keypoints, vis, HAND_21, la)
                found = best_palm(palm, frame, box, 1.25)  # as palm_hint looks
                if found is None or side is None:
                    continue
                kp = found[1]
                angle = angle_of(kp[PALM_MIDDLE] - kp[PALM_WRIST])
                a = math.radians(angle)
                turn = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])  # by -angle
                up = (kp - kp[PALM_WRIST]) @ turn.T
                up /= np.linalg.norm(up[PALM_MIDDLE]) + 1e-9
                source = Path(str(sample.image)).name.split("__")[0]
                rows.append({"source": f"{Path(path).parent.name}/{source}", "features": up.ravel(),
                             "label": bool(side), "rule": thumb_on_right(kp, angle, PALM_THUMB_SIDE, PALM_FAR_SIDE)})
    return rows


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iterations: int = 50) -> np.ndarray:
    """Newton's method on the L2-regularised logistic loss; returns weights with the bias last."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-xb @ w))
        grad = xb.T @ (p - y) / len(y) + l2 * w
        hess = (xb.T * (p * (1 - p))) @ xb / len(y) + l2 * np.eye(len(w))
        w -= np.linalg.solve(hess, grad)
    return w


def leave_one_source_out(x: np.ndarray, y: np.ndarray, sources: np.ndarray) -> float:
    """Accuracy of the logistic model on each source when fitted on all the others."""
    right = 0
    for s in sorted(set(sources)):
        held = sources == s
        w = fit_logistic(x[~held], y[~held].astype(float))
        right += int(((np.hstack([x[held], np.ones((held.sum(), 1))]) @ w > 0) == y[held]).sum())
    return right / len(y)


def report(rows: list[dict]) -> str:
    x = np.array([r["features"] for r in rows])
    y = np.array([r["label"] for r in rows])
    rule = np.array([r["rule"] for r in rows])
    sources = np.array([r["source"] for r in rows])
    lines = [f"{len(rows)} hands with a palm from {len(set(sources))} sources; thumb side right for {y.mean():.3f}",
             f"the pipeline's rule (index base right of little-finger base): right for {(rule == y).mean():.3f}"]
    for k in range(x.shape[1] // 2):
        xk = x[:, 2 * k]
        lines.append(f"keypoint {k}: the sign of its upright x alone is right for "
                     f"{max(((xk > 0) == y).mean(), ((xk < 0) == y).mean()):.3f}")
    lines.append(f"logistic over the 7 x, leave one source out: {leave_one_source_out(x[:, ::2], y, sources):.3f}")
    lines.append(f"logistic over all 14 coordinates, leave one source out: {leave_one_source_out(x, y, sources):.3f}")
    lines.append("hands per source: " + ", ".join(f"{s} {n}" for s, n in Counter(sources).most_common()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", default=[str(s) for s in TRAINING_SETS])
    args = p.parse_args(argv)
    print(report(collect(args.data)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
