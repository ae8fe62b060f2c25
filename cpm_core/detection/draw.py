"""Drawing tracked subjects with OpenCV: each id in its own colour, its crop outline and its id, so two
subjects stay told apart in saved media (the app draws the same colours with pyqtgraph). A skeleton with sides (a
body) keeps its left/right colour families (`cpm_core.skeleton.limb_colours`) and shows its id by the outline and
label only, as the app does; a skeleton without sides (a hand) is drawn whole in its id's colour."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from cpm_core.render import draw_pose as draw_pose_with
from cpm_core.skeleton import Skeleton, has_sides, limb_colours


def subject_colour(subject_id: int) -> tuple[int, int, int]:
    """A saturated BGR colour per id; golden-ratio hue steps keep consecutive ids far apart."""
    hue = (subject_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def draw_subjects(image: np.ndarray, subjects: list, skeleton: Skeleton | None = None, threshold: float = 0.1,
                  draw_pose: bool = True) -> np.ndarray:
    """Crop outline, '#id score' label and (if `draw_pose`) the skeleton of each subject, in the id's colour.

    `subjects` are `cpm_core.detection.multi.Subject`s (anything with id, crop, score, keypoints).
    """
    out = image.copy()
    t = max(1, round(max(image.shape[:2]) / 300))
    sided = limb_colours(skeleton) if skeleton is not None and has_sides(skeleton) else None
    for s in subjects:
        colour = subject_colour(s.id)
        corners = s.crop.corners().round().astype(np.int32)
        cv2.polylines(out, [corners], True, colour, t + 1, cv2.LINE_AA)
        if draw_pose and skeleton is not None and s.keypoints is not None:
            limbs = list(sided) if sided is not None else [colour] * len(skeleton.limbs)
            joints = [colour] * skeleton.num_joints
            for (_, b), limb_colour in zip(skeleton.limbs, limbs):
                joints[b] = limb_colour
            out = draw_pose_with(out, s.keypoints, skeleton, threshold, limb_bgr=limbs, joint_bgr=joints,
                                 outline=False, line_width=t, joint_radius=t + 1)
        label = f"#{s.id} {s.score:.2f}"
        x, y = corners[np.argmin(corners[:, 1])]  # the topmost corner, wherever the rotation put it
        scale = 0.4 * t
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, t)
        x = int(np.clip(x, 0, max(0, out.shape[1] - tw)))
        y = int(np.clip(y - 4, th + base, out.shape[0] - 1))
        cv2.rectangle(out, (x, y - th - base), (x + tw, y + base // 2), colour, -1)
        cv2.putText(out, label, (x, y - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), t, cv2.LINE_AA)
    return out
