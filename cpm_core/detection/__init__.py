"""Detector front end: find subjects anywhere in the frame, run the CPM on each, keep identities over time.

Detectors: `palm` (hands, MediaPipe's palm detector shipped in resources/detectors), `pose` (people,
MediaPipe's BlazePose detector) and `hog` (people, OpenCV's HOG; needs OpenCV 4.x). No Qt here.
"""

from __future__ import annotations

from cpm_core.detection.base import Detection, Detector, DetectorUnavailable
from cpm_core.detection.multi import MultiFrame, MultiPoseEstimator, Subject
from cpm_core.detection.tracker import MultiSubjectTracker, Track

DETECTORS = ("palm", "pose", "hog")


def default_detector_name(skeleton_name: str) -> str:
    """The detector for a model's skeleton: palms for hand models, the pose detector for body models."""
    return "palm" if skeleton_name.startswith("hand") else "pose"


def make_detector(name: str, **kwargs) -> Detector:
    """A detector by name; raises DetectorUnavailable when it cannot run here."""
    if name == "palm":
        from cpm_core.detection.palm import PalmDetector

        return PalmDetector(**kwargs)
    if name == "pose":
        from cpm_core.detection.pose import PoseDetector, default_pose_model

        if "model_path" not in kwargs and not default_pose_model().exists():
            raise DetectorUnavailable(f"pose detector model not found at {default_pose_model()}")
        return PoseDetector(**kwargs)
    if name == "hog":
        from cpm_core.detection.hog import HogPeopleDetector

        return HogPeopleDetector(**kwargs)
    raise KeyError(f"unknown detector {name!r}; choose one of {DETECTORS}")


__all__ = ["DETECTORS", "Detection", "Detector", "DetectorUnavailable", "MultiFrame", "MultiPoseEstimator",
           "MultiSubjectTracker", "Subject", "Track", "default_detector_name", "make_detector"]
