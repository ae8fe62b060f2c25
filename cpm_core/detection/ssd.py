"""The shared part of MediaPipe's single-shot detectors: letterbox the frame, run the tflite model, decode
boxes and keypoints against the anchors, score, and merge with weighted NMS.

Kept separate from the palm and pose detectors because both use exactly this, differing only in input size,
anchors, input range and what their keypoints mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cpm_core.detection.anchors import AnchorSpec, ssd_anchors
from cpm_core.detection.nms import weighted_nms


def load_interpreter(path: str | Path, threads: int = 2):
    """A detector's tflite model, allocated and ready (LiteRT when installed: `cpm_core.runtimes`)."""
    from cpm_core.runtimes import tflite_interpreter

    interp = tflite_interpreter(path, threads)
    interp.allocate_tensors()
    return interp


@dataclass(frozen=True)
class Letterbox:
    """Frame -> square input by uniform scaling and zero padding, as MediaPipe's image-to-tensor with
    `keep_aspect_ratio` does; maps normalised input coordinates back to frame pixels."""

    scale: float  # input pixels per frame pixel
    pad_x: int
    pad_y: int
    size: int

    @classmethod
    def fit(cls, width: int, height: int, size: int) -> Letterbox:
        scale = size / max(width, height)
        nw, nh = max(1, round(width * scale)), max(1, round(height * scale))
        return cls(scale, (size - nw) // 2, (size - nh) // 2, size)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        nw, nh = max(1, round(w * self.scale)), max(1, round(h * self.scale))
        small = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
        out = np.zeros((self.size, self.size, 3), np.uint8)
        out[self.pad_y:self.pad_y + nh, self.pad_x:self.pad_x + nw] = small
        return out

    def to_frame(self, xy_norm: np.ndarray) -> np.ndarray:
        """(..., 2) normalised input coordinates -> frame pixels (pixel centres at integers)."""
        xy = np.asarray(xy_norm, dtype=np.float64) * self.size
        return (xy - [self.pad_x, self.pad_y]) / self.scale - 0.5


def decode_ssd(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, input_size: int,
               num_keypoints: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw outputs (N, 4 + 2K) and (N,) or (N, 1) -> boxes (N, 4) as normalised (x0, y0, x1, y1), keypoints
    (N, K, 2) normalised, scores (N,) = sigmoid of the raw score clipped to [-100, 100].

    Every value is in input pixels relative to its anchor: x = raw_x / size + anchor_x, w = raw_w / size.
    """
    raw = np.asarray(raw_boxes, dtype=np.float64).reshape(len(anchors), -1)
    a = np.asarray(anchors, dtype=np.float64)
    cx = raw[:, 0] / input_size + a[:, 0]
    cy = raw[:, 1] / input_size + a[:, 1]
    w = raw[:, 2] / input_size
    h = raw[:, 3] / input_size
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kp = raw[:, 4:4 + 2 * num_keypoints].reshape(len(a), num_keypoints, 2) / input_size + a[:, None, :]
    scores = 1.0 / (1.0 + np.exp(-np.clip(np.asarray(raw_scores, dtype=np.float64).ravel(), -100, 100)))
    return boxes, kp, scores


@dataclass
class RawDetection:
    """One merged SSD detection in frame pixels."""

    xyxy: np.ndarray  # (4,)
    keypoints: np.ndarray  # (K, 2)
    score: float


class SsdModel:
    """One MediaPipe SSD tflite model with its anchors. Not thread-safe (one interpreter)."""

    def __init__(self, path: str | Path, anchors: AnchorSpec, num_keypoints: int, input_range: tuple[float, float],
                 score_threshold: float = 0.5, iou_threshold: float = 0.3, threads: int = 2):
        self.path = Path(path)
        self.spec = anchors
        self.anchors = ssd_anchors(anchors)
        self.num_keypoints = num_keypoints
        self.input_range = input_range
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self._interp = load_interpreter(path, threads)
        inp = self._interp.get_input_details()[0]
        self._input_index = inp["index"]
        outs = sorted(self._interp.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self._boxes_index, self._scores_index = outs[0]["index"], outs[1]["index"]
        n = int(outs[0]["shape"][1])
        if n != len(self.anchors) or int(inp["shape"][1]) != anchors.input_size:
            raise ValueError(f"{self.path.name}: model has {n} anchors at {inp['shape'][1]} px, expected "
                             f"{len(self.anchors)} at {anchors.input_size} px")

    def run(self, frame: np.ndarray) -> list[RawDetection]:
        """Detections in a BGR uint8 frame, best first, after the score threshold and weighted NMS."""
        h, w = frame.shape[:2]
        lb = Letterbox.fit(w, h, self.spec.input_size)
        rgb = lb.apply(frame)[..., ::-1].astype(np.float32)
        lo, hi = self.input_range
        x = rgb * np.float32((hi - lo) / 255.0) + np.float32(lo)
        self._interp.set_tensor(self._input_index, x[None])
        self._interp.invoke()
        raw_boxes = self._interp.get_tensor(self._boxes_index)[0]
        raw_scores = self._interp.get_tensor(self._scores_index)[0]
        boxes, kps, scores = decode_ssd(raw_boxes, raw_scores, self.anchors, self.spec.input_size,
                                        self.num_keypoints)
        keep = scores >= self.score_threshold
        if not keep.any():
            return []
        b, s, k = weighted_nms(boxes[keep], scores[keep], self.iou_threshold, kps[keep].reshape(int(keep.sum()), -1))
        out = []
        for box, score, kp in zip(b, s, k):
            corners = lb.to_frame(box.reshape(2, 2)).ravel()
            out.append(RawDetection(xyxy=corners, keypoints=lb.to_frame(kp.reshape(-1, 2)), score=float(score)))
        return out
