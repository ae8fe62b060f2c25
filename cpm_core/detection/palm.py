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
from cpm_core.detection.nms import iou_matrix, weighted_nms
from cpm_core.detection.ssd import RawDetection, SsdModel
from cpm_core.orientation import angle_of
from cpm_core.preprocess import CropBox

# The palm detector's keypoints (MediaPipe's order) that the hand pipeline reads, named once here: the wrist and
# the middle-finger base give "up" (`upright_angle`), the index- and little-finger bases the palm's thumb side
# and far side (`cpm_core.orientation.thumb_on_right`, used by `cpm_core.upright` and `detection.multi`).
PALM_WRIST, PALM_THUMB_SIDE, PALM_MIDDLE, PALM_FAR_SIDE = 0, 1, 2, 4


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
    angle = upright_angle(keypoints[PALM_WRIST], keypoints[PALM_MIDDLE])
    a = math.radians(angle)
    up = (math.sin(a), -math.cos(a))
    cx = (x0 + x1) / 2.0 + shift * h * up[0]
    cy = (y0 + y1) / 2.0 + shift * h * up[1]
    return CropBox(cx, cy, scale * max(w, h), angle)


def square_tiles(width: int, height: int, min_ratio: float = 1.5) -> list[tuple[int, int, int]]:
    """(x, y, side) squares of the shorter side along the longer one: ceil(long / short) + 1 of them, evenly
    spaced, so neighbours overlap by at least short^2 / long (61% of the side for 16:9) and a palm cut by one
    tile's border lies whole inside its neighbour;
    none for frames whose sides differ by less than `min_ratio` (letterboxing them costs little resolution)."""
    short, long_ = min(width, height), max(width, height)
    if short < 1 or long_ < min_ratio * short:
        return []
    offsets = np.linspace(0, long_ - short, math.ceil(long_ / short) + 1).round().astype(int)
    return [(int(o), 0, short) if width >= height else (0, int(o), short) for o in offsets]


class PalmDetector:
    """frame -> hands, best first: box = the palm, crop = the upright hand square, keypoints = 7 palm points.

    A wide frame is also looked at in square tiles (`square_tiles`). Letterboxed whole into the 192-pixel input, a
    16:9 frame keeps only 108 rows of it, and a palm of 46 pixels in a 960x540 frame (the man's shaka hand on
    `hand_pseudo/images/gesrec_mathmaxx__hands__00146.jpg`) is 9 input pixels: it scored 0.46, under the 0.5
    threshold, while at a tile's 1.8x larger scale it scores 0.84. A palm that only a tile finds must be seen
    by the whole-frame pass too: it is kept when the geometric mean of its tile score and the best whole-frame
    score over it (IoU > `iou_threshold`) reaches the score threshold (0.63 for that hand). Tiles alone also
    fire on boats and rocks the whole pass does not see (tile 0.77 over whole 0.00, 0.62 over 0.31, ...).
    Then everything is merged by the same weighted NMS. Palm detections on the 407 hand-free
    `backgrounds/images`: 45 (on 41 images) with the whole frame alone, 45 (on 41) with confirmed tiles,
    49 (on 45) with unconfirmed tiles, 58 (on 52) with the threshold lowered to 0.45 instead.
    `tiles=False` restores the single letterboxed pass."""

    name = "palm"

    def __init__(self, model_path: str | Path | None = None, score_threshold: float = 0.5,
                 iou_threshold: float = 0.3, crop_scale: float = 2.6, threads: int = 2, tiles: bool = True):
        self.crop_scale = crop_scale
        self.tiles = tiles
        self.iou_threshold = iou_threshold
        self._ssd = SsdModel(model_path or default_palm_model(), PALM_ANCHORS, num_keypoints=7,
                             input_range=(0.0, 1.0), score_threshold=score_threshold,
                             iou_threshold=iou_threshold, threads=threads)

    def _raw(self, frame: np.ndarray) -> list[RawDetection]:
        """The SSD on the whole frame and, for a wide one, on its square tiles (tile-only palms confirmed by the
        whole frame, see the class docstring); merged, best first."""
        found = self._ssd.run(frame)
        tiles = square_tiles(frame.shape[1], frame.shape[0]) if self.tiles else []
        if not tiles:
            return found
        extra = []
        for x, y, side in tiles:
            for d in self._ssd.run(frame[y:y + side, x:x + side]):
                box = d.xyxy + [x, y, x, y]
                if not any(iou_matrix(box, w.xyxy)[0, 0] > self.iou_threshold for w in found):
                    extra.append(RawDetection(box, d.keypoints + [x, y], d.score))
        extra = self._confirmed(frame, extra)
        if not extra:
            return found
        found = found + extra
        k = found[0].keypoints.shape
        boxes, scores, kps = weighted_nms(np.array([d.xyxy for d in found]), np.array([d.score for d in found]),
                                          self.iou_threshold, np.array([d.keypoints.ravel() for d in found]))
        return [RawDetection(b, kp.reshape(k), float(sc)) for b, sc, kp in zip(boxes, scores, kps)]

    def _confirmed(self, frame: np.ndarray, candidates: list[RawDetection]) -> list[RawDetection]:
        """The tile-only candidates whose score, combined (geometric mean) with the best whole-frame score over
        them, reaches the threshold. The whole frame is run again below the threshold only when there are
        candidates (rarely), so its own detections stay exactly MediaPipe's."""
        if not candidates:
            return []
        threshold = self._ssd.score_threshold
        self._ssd.score_threshold = threshold ** 2  # a whole-frame score below this can never confirm
        try:
            weak = self._ssd.run(frame)
        finally:
            self._ssd.score_threshold = threshold
        kept = []
        for c in candidates:
            seen = [w.score for w in weak if iou_matrix(c.xyxy, w.xyxy)[0, 0] > self.iou_threshold]
            if seen and math.sqrt(c.score * max(seen)) >= threshold:
                kept.append(c)
        return kept

    def detect(self, frame: np.ndarray) -> list[Detection]:
        out = []
        for d in self._raw(frame):
            x0, y0, x1, y1 = (float(v) for v in d.xyxy)
            out.append(Detection((x0, y0, x1 - x0, y1 - y0), d.score, hand_crop(d.xyxy, d.keypoints, self.crop_scale),
                                 d.keypoints.astype(np.float32), "hand"))
        return out
