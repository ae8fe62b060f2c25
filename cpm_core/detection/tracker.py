"""MultiSubjectTracker: stable identities for several subjects across frames, each with its own smoothing.

A detector sees every frame afresh and lists subjects in score order, which swaps whenever two scores cross;
the tracker turns that into identities: Hungarian matching on box/joint cost against each track's predicted
box, a track survives `max_missed` frames without a match (a detector blinks more often than people leave),
and only detections matching no track start a new id. Ids are never reused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cpm_core.detection.association import assign, association_cost
from cpm_core.detection.base import Detection
from cpm_core.tracking import KalmanSmoother


@dataclass
class Track:
    """One subject's identity and state. `keypoints` are the shown (smoothed, if on) joints of the last match."""

    id: int
    box: np.ndarray  # (4,) x0, y0, x1, y1 of the last match
    detection: Detection
    smoother: KalmanSmoother
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))  # box change per frame
    keypoints: np.ndarray | None = None
    raw_keypoints: np.ndarray | None = None
    missed: int = 0  # consecutive frames without a match
    hits: int = 1
    age: int = 1  # frames since the track started

    def predicted_box(self) -> np.ndarray:
        return self.box + self.velocity * (self.missed + 1)


class MultiSubjectTracker:
    """Feed each frame's detections (and, optionally, each detection's (J, 3) pose); get the tracks seen now."""

    def __init__(self, max_missed: int = 5, max_cost: float = 2.0, smooth: bool = True,
                 process_noise: float = 0.03, measurement_noise: float = 1.0, keypoint_weight: float = 0.5):
        self.max_missed = max_missed
        self.max_cost = max_cost
        self.smooth = smooth
        self.process_noise = process_noise
        self.measurement_noise = measurement_noise
        self.keypoint_weight = keypoint_weight
        self.tracks: list[Track] = []
        self._next_id = 1
        self.frame = 0

    def reset(self) -> None:
        """Forget every track (new source, seek); ids start again at 1."""
        self.tracks = []
        self._next_id = 1
        self.frame = 0

    def update(self, detections: list[Detection], keypoints: list[np.ndarray] | None = None) -> list[Track]:
        """Match this frame's detections; returns the tracks matched or born in this frame, by id."""
        self.frame += 1
        kps = keypoints if keypoints is not None else [None] * len(detections)
        if len(kps) != len(detections):
            raise ValueError(f"{len(detections)} detections but {len(kps)} keypoint arrays")
        det_boxes = np.array([d.xyxy for d in detections]).reshape(-1, 4)
        cost = association_cost(np.array([t.predicted_box() for t in self.tracks]).reshape(-1, 4), det_boxes,
                                *self._keypoint_arrays(kps), keypoint_weight=self.keypoint_weight)
        matches, lost, born = assign(cost, self.max_cost)
        seen: list[Track] = []
        for ti, di in matches:
            track = self.tracks[ti]
            new_box = det_boxes[di]
            step = (new_box - track.box) / (track.missed + 1)
            track.velocity = 0.5 * track.velocity + 0.5 * step
            track.box, track.detection = new_box, detections[di]
            track.missed, track.hits, track.age = 0, track.hits + 1, track.age + 1
            self._set_keypoints(track, kps[di])
            seen.append(track)
        for ti in lost:
            track = self.tracks[ti]
            track.missed += 1
            track.age += 1
            if track.keypoints is not None and self.smooth:  # keep the filters gliding through the gap
                track.smoother.update(np.full_like(track.keypoints, np.nan))
        for di in born:
            track = Track(self._next_id, det_boxes[di], detections[di],
                          KalmanSmoother(self.process_noise, self.measurement_noise))
            self._next_id += 1
            self._set_keypoints(track, kps[di])
            self.tracks.append(track)
            seen.append(track)
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return sorted(seen, key=lambda t: t.id)

    def _set_keypoints(self, track: Track, kp: np.ndarray | None) -> None:
        if kp is None:
            return
        kp = np.asarray(kp, dtype=np.float32)
        track.raw_keypoints = kp
        track.keypoints = track.smoother.update(kp) if self.smooth else kp

    def _keypoint_arrays(self, kps: list[np.ndarray | None]) -> tuple[np.ndarray | None, np.ndarray | None]:
        if not self.tracks or not kps or any(k is None for k in kps):
            return None, None
        shapes = {np.asarray(k).shape for k in kps}
        if len(shapes) != 1:
            return None, None
        shape = shapes.pop()
        tk = np.stack([t.raw_keypoints if t.raw_keypoints is not None and t.raw_keypoints.shape == shape
                       else np.full(shape, np.nan) for t in self.tracks])
        # Move each track's joints with its box, so a moving subject is compared where it is expected now.
        shift = np.stack([(t.predicted_box() - t.box)[:2] for t in self.tracks])
        tk = tk.copy()
        tk[..., :2] += shift[:, None, :]
        return tk, np.stack([np.asarray(k, dtype=np.float64) for k in kps])
