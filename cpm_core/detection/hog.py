"""People with OpenCV's built-in HOG + linear SVM detector: no model file to ship, runs anywhere OpenCV does.

OpenCV 5 dropped `HOGDescriptor` from the main package: there this detector raises `DetectorUnavailable`.
It finds upright, mostly whole people of at least about 128 px in the (downscaled) frame; sitting or
partly hidden people are its weak spot, which is why the pose detector is the alternative.
"""

from __future__ import annotations

import cv2
import numpy as np

from cpm_core.detection.base import Detection, DetectorUnavailable, square_crop
from cpm_core.detection.nms import nms


class HogPeopleDetector:
    """frame -> people, best first. The frame is shrunk so its longer side is `max_side` px first (HOG's cost
    grows with the pixel count, and its 64x128 window needs no more detail); scores are the SVM margins
    squashed to (0, 1) by a sigmoid, so 0.5 is the SVM's own decision boundary."""

    name = "hog"

    def __init__(self, max_side: int = 480, score_threshold: float = 0.5, iou_threshold: float = 0.4,
                 crop_margin: float = 1.2, win_stride: int = 8, scale: float = 1.05):
        self.max_side = max_side
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.crop_margin = crop_margin
        self.win_stride = win_stride
        self.scale = scale
        if not hasattr(cv2, "HOGDescriptor"):  # OpenCV 5 moved HOG out of the main package into contrib
            raise DetectorUnavailable(f"OpenCV {cv2.__version__} has no HOGDescriptor (OpenCV 5 moved it to "
                                      "opencv-contrib); install OpenCV 4.x or use the 'pose' detector")
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(self, frame: np.ndarray) -> list[Detection]:
        h, w = frame.shape[:2]
        f = min(1.0, self.max_side / max(h, w))
        small = cv2.resize(frame, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA) if f < 1 else frame
        rects, weights = self._hog.detectMultiScale(small, winStride=(self.win_stride,) * 2, padding=(8, 8),
                                                    scale=self.scale)
        if len(rects) == 0:
            return []
        rects = np.asarray(rects, dtype=np.float64) / f
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, dtype=np.float64).ravel()))
        xyxy = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
        out = []
        for i in nms(xyxy, scores, self.iou_threshold):
            if scores[i] < self.score_threshold:
                continue
            box = tuple(float(v) for v in rects[i])
            out.append(Detection(box, float(scores[i]), square_crop(box, self.crop_margin), None, "person"))
        return out
