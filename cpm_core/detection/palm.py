"""Hands anywhere in the frame, any number, with MediaPipe's palm detector (shipped in resources/detectors).

Palms are found rather than hands because a palm is nearly rigid and square, so one anchor shape fits it in
any pose; the hand crop is then grown from the palm box and turned upright with the palm's keypoints
(wrist -> middle-finger base points up), which is the view hand keypoint models are trained on.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cpm_core.detection.anchors import PALM_ANCHORS
from cpm_core.detection.base import Detection
from cpm_core.detection.ssd import SsdModel
from cpm_core.orientation import angle_of
from cpm_core.preprocess import CropBox

WRIST, MIDDLE_BASE = 0, 2  # palm keypoints used to turn the hand upright


def default_palm_model() -> Path:
    from cpm_core.weights.loading import resources_dir

    return resources_dir() / "detectors" / "palm_detection_full.tflite"


def upright_angle(wrist: np.ndarray, middle_base: np.ndarray) -> float:
    """The CropBox angle (degrees) whose 'up' points from the wrist to the middle finger's base.

    A CropBox turned by `a` has its up direction at (sin a, -cos a) in image coordinates (y down), so
    a = atan2(dx, -dy): 0 for fingers up, 90 for fingers pointing right, 180 for fingers down.
    """
    return angle_of(np.asarray(middle_base, dtype=np.float64) - np.asarray(wrist, dtype=np.float64))


def hand_crop(xyxy: np.ndarray, keypoints: np.ndarray, scale: float = 2.6, shift: float = 0.5) -> CropBox:
    """MediaPipe's palm -> hand rectangle: rotate upright, side = `scale` x the palm box's longer side,
    centre moved `shift` palm-box heights towards the fingers (along the rotated vertical axis)."""
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    w, h = x1 - x0, y1 - y0
    angle = upright_angle(keypoints[WRIST], keypoints[MIDDLE_BASE])
    a = math.radians(angle)
    up = (math.sin(a), -math.cos(a))
    cx = (x0 + x1) / 2.0 + shift * h * up[0]
    cy = (y0 + y1) / 2.0 + shift * h * up[1]
    return CropBox(cx, cy, scale * max(w, h), angle)


class PalmDetector:
    """frame -> hands, best first: box = the palm, crop = the upright hand square, keypoints = 7 palm points."""

    name = "palm"

    def __init__(self, model_path: str | Path | None = None, score_threshold: float = 0.5,
                 iou_threshold: float = 0.3, crop_scale: float = 2.6, threads: int = 2):
        self.crop_scale = crop_scale
        self._ssd = SsdModel(model_path or default_palm_model(), PALM_ANCHORS, num_keypoints=7,
                             input_range=(0.0, 1.0), score_threshold=score_threshold,
                             iou_threshold=iou_threshold, threads=threads)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        out = []
        for d in self._ssd.run(frame):
            x0, y0, x1, y1 = (float(v) for v in d.xyxy)
            out.append(Detection((x0, y0, x1 - x0, y1 - y0), d.score, hand_crop(d.xyxy, d.keypoints, self.crop_scale),
                                 d.keypoints.astype(np.float32), "hand"))
        return out
