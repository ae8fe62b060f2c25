"""Recording a session: the annotated video plus every processed frame's keypoints as JSON and CSV.

Written from the inference thread (encoding a frame is too slow for the GUI thread). Only frames the model
processed are recorded, so with a slow model the video holds fewer frames than the source; each row keeps the
source frame index so the keypoints still line up with the original.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np

from cpm_core.render import draw_pose
from cpm_core.skeleton import Skeleton


class Recorder:
    """Writes `<stem>.mp4`, `<stem>.json` and `<stem>.csv` for the video path `path`."""

    def __init__(self, path: str | Path, skeleton: Skeleton, fps: float, threshold: float = 0.1):
        self.video_path = Path(path).with_suffix(".mp4")
        self.json_path = self.video_path.with_suffix(".json")
        self.csv_path = self.video_path.with_suffix(".csv")
        self.video_path.parent.mkdir(parents=True, exist_ok=True)
        self.skeleton = skeleton
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.threshold = threshold
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self._frames: list[dict] = []
        self._csv = open(self.csv_path, "w", newline="", encoding="utf-8")
        self._csv_writer = csv.writer(self._csv)
        header = ["frame"]
        for name in skeleton.joints:
            header += [f"{name}_x", f"{name}_y", f"{name}_conf"]
        self._csv_writer.writerow(header)
        self.frames_written = 0

    def write(self, frame_bgr: np.ndarray, pose) -> None:
        """Add one processed frame (a PoseFrame from the worker)."""
        kp = np.asarray(pose.shown, dtype=np.float64)
        h, w = frame_bgr.shape[:2]
        if self._writer is None:
            self._size = (w, h)
            self._writer = cv2.VideoWriter(str(self.video_path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise OSError(f"{self.video_path}: cannot write video")
        annotated = draw_pose(frame_bgr, kp, self.skeleton, self.threshold)
        if (w, h) != self._size:  # a folder of differently sized images
            annotated = cv2.resize(annotated, self._size)
        self._writer.write(annotated)
        self._frames.append({"frame": int(pose.index), "keypoints": np.round(kp, 3).tolist()})
        self._csv_writer.writerow([pose.index] + [f"{v:.3f}" for v in kp.reshape(-1)])
        self.frames_written += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._csv.close()
        doc = {"skeleton": self.skeleton.to_dict(), "fps": self.fps, "keypoint_format": ["x", "y", "confidence"],
               "frames": self._frames}
        self.json_path.write_text(json.dumps(doc), encoding="utf-8")
