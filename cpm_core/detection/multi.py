"""Top-down multi-subject pose: detect subjects, run the CPM once on all their crops (one batched call),
map joints back to the frame, and keep identities over time.

This is the piece the app and `cpm infer --detect` share; it holds no Qt and draws nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from cpm_core.detection.base import Detection, Detector
from cpm_core.detection.palm import PALM_FAR_SIDE, PALM_THUMB_SIDE
from cpm_core.detection.tracker import MultiSubjectTracker
from cpm_core.estimator import PoseEstimator, PoseResult
from cpm_core.orientation import model_chirality, thumb_on_right
from cpm_core.preprocess import CropBox


@dataclass
class Subject:
    """One tracked subject in one frame; `keypoints` (J, 3) in frame pixels (smoothed when the tracker smooths)."""

    id: int
    detection: Detection
    result: PoseResult
    keypoints: np.ndarray

    @property
    def box(self) -> tuple[float, float, float, float]:
        return self.detection.box

    @property
    def score(self) -> float:
        return self.detection.score

    @property
    def crop(self) -> CropBox:
        return self.detection.crop

    def to_dict(self, digits: int = 2) -> dict:
        """The JSON form `cpm infer --detect` writes."""
        return {"id": self.id, "box": [round(float(v), digits) for v in self.box], "score": round(self.score, 4),
                "crop": [round(float(v), digits) for v in (self.crop.cx, self.crop.cy, self.crop.side,
                                                           self.crop.angle)],
                "keypoints": [[round(float(x), digits), round(float(y), digits), round(float(c), 4)]
                              for x, y, c in self.keypoints]}


@dataclass
class MultiFrame:
    """Everything found in one frame, with where the time went (milliseconds)."""

    subjects: list[Subject]
    detections: list[Detection]
    timings: dict[str, float] = field(default_factory=dict)


class MultiPoseEstimator:
    """detector + CPM + tracker; `process` returns subjects best score first. Call `reset()` between
    unrelated sources so ids and smoothing start afresh."""

    def __init__(self, estimator: PoseEstimator, detector: Detector, max_subjects: int = 4,
                 tracker: MultiSubjectTracker | None = None):
        if max_subjects < 1:
            raise ValueError(f"max_subjects must be at least 1, got {max_subjects}")
        self.estimator = estimator
        self.detector = detector
        self.max_subjects = max_subjects
        self.tracker = tracker if tracker is not None else MultiSubjectTracker()

    def reset(self) -> None:
        self.tracker.reset()

    def estimate(self, frame: np.ndarray, detections: list[Detection]) -> list[PoseResult]:
        """The CPM on each detection's crop, all in one batched call; joints in frame pixels."""
        if not detections:
            return []
        return self.estimator.predict_batch([frame] * len(detections), [self.model_crop(d) for d in detections],
                                            batch_size=len(detections))

    def model_crop(self, detection: Detection) -> CropBox:
        """The detection's crop as the model wants it: a canonical-chirality hand model gets hands whose thumb
        side is on the right mirrored, told by the palm detector's index and little-finger bases."""
        kp = detection.keypoints
        if (model_chirality(self.estimator.card) != "canonical" or detection.label != "hand" or kp is None
                or len(kp) <= PALM_FAR_SIDE):
            return detection.crop
        return replace(detection.crop, mirror=thumb_on_right(kp, detection.crop.angle, PALM_THUMB_SIDE,
                                                              PALM_FAR_SIDE))

    def process(self, frame: np.ndarray) -> MultiFrame:
        """Detect, keep the `max_subjects` best, estimate their poses, and match them to tracks."""
        t0 = time.perf_counter()
        detections = sorted(self.detector.detect(frame), key=lambda d: -d.score)[:self.max_subjects]
        t1 = time.perf_counter()
        results = self.estimate(frame, detections)
        t2 = time.perf_counter()
        tracks = self.tracker.update(detections, [r.keypoints for r in results])
        by_detection = {id(d): r for d, r in zip(detections, results)}
        subjects = [Subject(t.id, t.detection, by_detection[id(t.detection)], t.keypoints) for t in tracks]
        subjects.sort(key=lambda s: -s.score)  # best first: the first subject is the single-subject answer
        t3 = time.perf_counter()
        return MultiFrame(subjects, detections, {"detect": (t1 - t0) * 1e3, "pose": (t2 - t1) * 1e3,
                                                 "track": (t3 - t2) * 1e3})
