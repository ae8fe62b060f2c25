"""Is the person too small for a whole-frame body pose? Read from the heatmaps' own peaks.

A body model without a detector sees the whole frame letterboxed into its input (192 px for the default), so a
person who fills a third of the frame is some 60 px tall to the net, far below the ~70 % of the crop it was
trained on. It still answers with 17 joints, and the skeleton it draws is meaningless (a few joints piled on
the person, the rest anywhere). The app then hides the skeleton and suggests the detector, which crops each
person to the model's scale (issue #18, item 4).

The rule (`check_subject_size`), for a whole-frame result of a skeleton with left/right joints (a body):

1. too small when `cpm_core.presence` is below its threshold: the net marks too little of the frame as
   "person" for any pose to stand (the app already drew no pose then, but said nothing); or
2. when the skeleton the app would draw collapses onto one spot: fewer than two joints peak at PEAK_LEVEL (the
   app's default confidence threshold) or more, or those joints span less than MIN_EXTENT of the frame's
   longer side.

Why: measured with the default body model (body-rt-192x3, float32) on training frames only (70 images of
`body_more/train.json`, 50 of `body_pseudo/train.json`, each whole and shrunk to 0.5 and 0.3 onto one of the
shared backgrounds; and 51 of the backgrounds, no person), PCK@0.2 of the whole-frame pose against the person's
size (longer side of the labelled joints' box / frame's longer side):

    person size   0-0.1  0.1-0.2  0.2-0.3  0.3-0.4  0.4-0.5  >= 0.5
    frames           70      151       53       51       26       9
    mean PCK       0.00     0.06     0.09     0.32     0.70    0.93

so below about a third of the frame the skeleton is meaningless. Rule 1 lets 21 of the 311 person frames whose
pose is wrong (PCK < 0.5) be drawn (14 of them people under a quarter of the frame, whose peaks spread over
the frame rather than pile up, so no extent rule catches them; 7 of 0.35-0.44, at the model's limit), and 6 of
the 51 empty backgrounds. Rule 2 changes nothing on these frames at peak
levels 0.1 to 0.2; at 0.3 it would hide 10 more wrong poses but also 2 good ones, and it told the woman filling
MediaPipe's pose test image (tests/fixtures/body/sitting_woman.jpg) that she was too small, because only her
face peaks above 0.3 with this model. So rule 2 stays at the drawing threshold: a guard against a skeleton
piled onto one spot, not a size estimate.

What the heatmaps cannot tell is a small person from an empty scene: with this model the best single signal
(highest joint peak) separates the two with an AUC of 0.70 (presence 0.64), so both give the hint. The app's
words are a suggestion ("tick Detect subjects (D) for small people"), not a claim that a person is there.
Like `cpm_core.presence`, the rule reads only what any model trained on these targets draws, so it should
carry over to a new body model; none of the numbers were chosen on a val file. It did for body-lite-192x3, the
default body model since v3 (`python bench/subject_size.py`, training frames only: v4 6 of 277 wrong whole-frame
poses still drawn, 16 of 83 good ones hidden, 49 of 50 empty backgrounds hinted; v3 5, 21, 50; body-rt-192x3 there
4, 38, 49).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cpm_core.presence import THRESHOLD as PRESENCE_THRESHOLD
from cpm_core.skeleton import Skeleton, has_sides

if TYPE_CHECKING:
    from cpm_core.estimator import PoseResult

PEAK_LEVEL = 0.1  # a joint peaking this high is drawn (the app's default confidence threshold)
MIN_EXTENT = 0.2  # confident peaks must span at least this share of the frame's longer side
MIN_CONFIDENT = 2  # with fewer confident joints there is no span to measure: too small
HINT = "tick Detect subjects (D) for small people"  # what the app's status bar says, once per source


@dataclass(frozen=True)
class SubjectSize:
    """What `check_subject_size` read from one result, and its verdict."""

    applies: bool  # a whole-frame result of a body (left/right) skeleton: the only case the rule judges
    presence: float
    confident: int  # joints whose peak is at least PEAK_LEVEL
    extent: float  # span of the confident joints / the frame's longer side (0 with fewer than 2)

    @property
    def too_small(self) -> bool:
        if not self.applies:
            return False
        return (self.presence < PRESENCE_THRESHOLD or self.confident < MIN_CONFIDENT
                or self.extent < MIN_EXTENT)


def is_whole_frame(result: PoseResult, frame_shape: tuple[int, ...]) -> bool:
    """Whether the model looked at the whole frame letterboxed (no detector crop, no self-tracking crop)."""
    box = result.crop.box
    h, w = frame_shape[:2]
    return (abs(box.side - max(w, h)) <= 1.0 and abs(box.cx - w / 2) <= 1.0 and abs(box.cy - h / 2) <= 1.0
            and not box.angle and not box.mirror)


def check_subject_size(result: PoseResult, frame_shape: tuple[int, ...], skeleton: Skeleton) -> SubjectSize:
    """Judge one result (see the module docstring); `frame_shape` is the frame's (h, w[, c])."""
    kp = np.asarray(result.keypoints, np.float64)
    applies = has_sides(skeleton) and is_whole_frame(result, frame_shape)
    ok = np.isfinite(kp).all(axis=1) & (kp[:, 2] >= PEAK_LEVEL)
    extent = 0.0
    if ok.sum() >= 2:
        span = np.ptp(kp[ok, :2], axis=0)
        extent = float(span.max()) / max(float(result.crop.box.side), 1.0)
    return SubjectSize(applies=applies, presence=float(result.presence), confident=int(ok.sum()), extent=extent)


def subject_too_small(result: PoseResult, frame_shape: tuple[int, ...], skeleton: Skeleton) -> bool:
    """Whether a whole-frame body pose would be meaningless because the person is too small (or absent)."""
    return check_subject_size(result, frame_shape, skeleton).too_small
