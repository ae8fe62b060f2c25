"""People with MediaPipe's BlazePose detector (pose_detection.tflite): finds a person from the face and
shoulders, so it also finds people sitting, cropped at the waist, or turned away from the HOG's pose.

Its box is the face; the person comes from its keypoints as MediaPipe's pose pipeline builds it: centre at
the hips' midpoint (keypoint 0), radius = distance to keypoint 1 (a point on the circle around the body).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpm_core.detection.anchors import POSE_ANCHORS
from cpm_core.detection.base import Detection
from cpm_core.detection.ssd import SsdModel
from cpm_core.preprocess import CropBox

HIP_CENTRE, BODY_CIRCLE = 0, 1


def default_pose_model() -> Path:
    from cpm_core.weights.loading import resources_dir

    return resources_dir() / "detectors" / "pose_detection.tflite"


class PoseDetector:
    """frame -> people, best first: box = the square around the body circle, crop = that square x margin."""

    name = "pose"

    def __init__(self, model_path: str | Path | None = None, score_threshold: float = 0.5,
                 iou_threshold: float = 0.3, crop_margin: float = 1.1, threads: int = 2):
        self.crop_margin = crop_margin
        self._ssd = SsdModel(model_path or default_pose_model(), POSE_ANCHORS, num_keypoints=4,
                             input_range=(-1.0, 1.0), score_threshold=score_threshold,
                             iou_threshold=iou_threshold, threads=threads)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        out = []
        for d in self._ssd.run(frame):
            cx, cy = (float(v) for v in d.keypoints[HIP_CENTRE])
            r = float(np.linalg.norm(d.keypoints[BODY_CIRCLE] - d.keypoints[HIP_CENTRE]))
            box = (cx - r, cy - r, 2 * r, 2 * r)
            crop = CropBox(cx, cy, 2 * r * self.crop_margin)
            out.append(Detection(box, d.score, crop, d.keypoints.astype(np.float32), "person"))
        return out
