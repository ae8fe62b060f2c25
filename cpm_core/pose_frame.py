"""`PoseFrame`: one processed frame, everything a view, a plot or a recorder needs, built off the GUI thread.

The one type the live pipeline (`cpm_core.live_pipeline`) hands on: the app's views and plots draw it, the
recorder writes it, `cpm infer` and the bench can produce it without Qt. It is built in one place
(`PoseFrame.build`), so single-subject and multi-subject frames cannot drift apart, and the per-stage reductions
the heatmap views draw are computed by one function (`stage_reductions`) for the frame and for every subject.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np

from cpm_core.estimator import PoseResult
from cpm_core.preprocess import CropBox
from cpm_core.presence import THRESHOLD as PRESENCE_THRESHOLD
from cpm_core.skeleton import Skeleton


class StageReductions(NamedTuple):
    """What the heatmap views draw, reduced once off the GUI thread (no reductions over full stacks there)."""

    stage_max: np.ndarray  # (stages, h, w): max over joints of each stage's heatmaps
    stage_conf: np.ndarray  # (stages,) mean joint confidence per stage, in [0, 1]
    joint_peaks: np.ndarray  # (J,) last-stage confidence per joint (its heatmap's peak clipped to [0, 1])


def clip_confidence(keypoints: np.ndarray) -> np.ndarray:
    """(J, 3) keypoints with their confidence column clipped to [0, 1] (a copy; positions, NaN included, kept).

    Why: a heatmap's peak is trained towards 1 but is not bounded by it (a sharp DARK-decoded peak, or a network
    that overshoots, gave "thumb3 1.02"). Every reader calls the column a confidence and compares it with a
    threshold in [0, 1], so views, recordings and plots show the clipped value, one meaning everywhere."""
    kp = np.array(keypoints, dtype=np.float32, copy=True)
    kp[:, 2] = np.clip(kp[:, 2], 0.0, 1.0)
    return kp


def stage_reductions(result: PoseResult) -> StageReductions:
    """The reductions of one result's heatmaps (NaN, from a broken model, counts as 0). Confidences are the joints'
    heatmap peaks clipped to [0, 1] (`clip_confidence` says why); `stage_max`, what the tiles colour, is not."""
    joint_maps = np.nan_to_num(result.heatmaps[..., :result.num_joints], nan=0.0)
    peaks = np.clip(joint_maps.max(axis=(-3, -2)), 0.0, 1.0)  # (stages, J)
    return StageReductions(joint_maps.max(axis=-1), peaks.mean(axis=-1), peaks[-1])


@dataclass(frozen=True)
class PipelineCounts:
    """The live pipeline's counters when a frame left the model: frames offered, dropped unprocessed (a newer one
    replaced them in the mailbox) and processed. Named, so no reader depends on a tuple's order."""

    captured: int = 0
    dropped: int = 0
    processed: int = 0


@dataclass(frozen=True)
class TrackState:
    """The self-tracking crop's state for one frame (single-subject mode)."""

    tracking: bool = False
    lost: bool = False
    score: float = 0.0


@dataclass
class SubjectPose:
    """One detected, tracked subject of a frame: its identity, where the detector saw it and the pose and
    heatmap reductions of its own crop, so any view can show any subject without model work."""

    id: int
    score: float
    box: tuple[float, float, float, float]  # what the detector saw (x, y, w, h), frame pixels
    crop: CropBox  # the square (rotated for hands) region the CPM looked at
    result: PoseResult  # the CPM's output for this crop (heatmaps of every stage)
    raw: np.ndarray  # (J, 3) keypoints straight from the model
    smoothed: np.ndarray  # (J, 3) the tracker's per-subject Kalman-smoothed keypoints
    stage_max: np.ndarray
    stage_conf: np.ndarray
    joint_peaks: np.ndarray
    label: str = ""
    presence: float = 1.0  # its result's presence, computed here once rather than on every paint

    @classmethod
    def from_tracked(cls, subject) -> SubjectPose:
        """From a `cpm_core.detection.multi` tracked subject (id, score, box, crop, result, keypoints, detection)."""
        reduced = stage_reductions(subject.result)
        return cls(subject.id, subject.score, subject.box, subject.crop, subject.result,
                   clip_confidence(subject.result.keypoints), clip_confidence(subject.keypoints), *reduced,
                   subject.detection.label, subject.result.presence)

    def contains(self, x: float, y: float) -> bool:
        """Whether a frame point lies in the subject's crop (rotated square) or its detector box."""
        bx, by, bw, bh = self.box
        if bx <= x <= bx + bw and by <= y <= by + bh:
            return True
        corners = self.crop.corners().astype(np.float32)
        return cv2.pointPolygonTest(corners, (float(x), float(y)), False) >= 0


@dataclass
class PoseFrame:
    """Everything the views need to draw one frame, computed off the GUI thread."""

    index: int
    generation: int
    bgra: np.ndarray  # (H, W, 4) uint8 BGRA: the frame as Qt paints it fastest (see app/fast_image.py)
    result: PoseResult
    skeleton: Skeleton
    raw: np.ndarray  # (J, 3) keypoints straight from the model
    smoothed: np.ndarray  # (J, 3) Kalman-smoothed keypoints
    kalman: bool  # whether `shown` is the smoothed pose
    crop: CropBox  # the region the model looked at
    tracking: bool
    tracker_lost: bool
    tracker_score: float
    stage_max: np.ndarray  # (stages, h, w): max over joints of each stage's heatmaps
    stage_conf: np.ndarray  # (stages,) mean peak confidence per stage
    joint_peaks: np.ndarray  # (J,) last-stage peak per joint
    latency_ms: float  # capture -> result
    captured: int = 0
    dropped: int = 0
    processed: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    detecting: bool = False  # the frame went through the detector; `subjects` lists what it found
    subjects: list[SubjectPose] = field(default_factory=list)  # by id
    detector: str = ""
    presence: float = 1.0  # `PoseResult.presence` of the frame's own result (single-subject mode)
    small_subject: bool = False  # a body model on the whole frame sees no person big enough to pose
    restart: bool = False  # the first frame after a new source, a seek or a loop: plots start a new stretch

    @classmethod
    def build(cls, *, index: int, generation: int, frame_bgr: np.ndarray, result: PoseResult, skeleton: Skeleton,
              raw: np.ndarray, smoothed: np.ndarray, kalman: bool, crop: CropBox, counts: PipelineCounts,
              latency_ms: float, timings: dict[str, float], track: TrackState = TrackState(),
              reductions: StageReductions | None = None, subjects: list[SubjectPose] | None = None,
              detector: str = "", presence: float = 1.0, small_subject: bool = False,
              restart: bool = False) -> PoseFrame:
        """The one place a PoseFrame is made: converts the frame to BGRA once and reduces `result`'s heatmaps
        unless the caller already did (a detected subject's). `subjects` not None marks a detector frame. The
        joints' confidences are clipped to [0, 1] here (`clip_confidence`)."""
        reductions = reductions if reductions is not None else stage_reductions(result)
        return cls(index=index, generation=generation, bgra=cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2BGRA),
                   result=result, skeleton=skeleton, raw=clip_confidence(raw), smoothed=clip_confidence(smoothed),
                   kalman=kalman, crop=crop,
                   tracking=track.tracking, tracker_lost=track.lost, tracker_score=track.score,
                   stage_max=reductions.stage_max, stage_conf=reductions.stage_conf,
                   joint_peaks=reductions.joint_peaks, latency_ms=latency_ms, captured=counts.captured,
                   dropped=counts.dropped, processed=counts.processed, timings=timings,
                   detecting=subjects is not None, subjects=subjects or [], detector=detector, presence=presence,
                   small_subject=small_subject, restart=restart)

    @property
    def counts(self) -> PipelineCounts:
        return PipelineCounts(self.captured, self.dropped, self.processed)

    @property
    def present(self) -> bool:
        """Whether the model sees a subject at all; when not, the views draw no pose (its joints would land on
        whatever the crop holds, a forearm or a wall) and the self-tracker and follower search again."""
        return self.presence >= PRESENCE_THRESHOLD

    @property
    def draws_pose(self) -> bool:
        """Whether the views draw this single-subject frame's skeleton: a subject is seen and, for a body model
        on the whole frame, is big enough for the pose to mean something (`cpm_core.subject_size`; when it is
        not, the window suggests Detect subjects once)."""
        return self.present and not self.small_subject

    @property
    def shown(self) -> np.ndarray:
        return self.smoothed if self.kalman else self.raw

    def subject(self, subject_id: int | None) -> SubjectPose | None:
        """The subject with this id, else the lowest id present (the default selection), else None."""
        for s in self.subjects:
            if s.id == subject_id:
                return s
        return self.subjects[0] if self.subjects else None

    def for_subject(self, subject_id: int | None) -> PoseFrame:
        """This frame as a single-subject frame of one subject (see `subject`), so the heatmap views draw a
        selected subject unchanged; the frame itself when not detecting or nothing was found."""
        s = self.subject(subject_id)
        if s is None:
            return self
        return dataclasses.replace(self, result=s.result, raw=s.raw, smoothed=s.smoothed, crop=s.crop,
                                   stage_max=s.stage_max, stage_conf=s.stage_conf, joint_peaks=s.joint_peaks)

    def subject_at(self, x: float, y: float) -> int | None:
        """The id of the subject under a frame point: among those whose crop or box holds it, the one with the
        nearest centre (crops of close hands overlap); None when the point is on no subject."""
        hits = [s for s in self.subjects if s.contains(x, y)]
        if not hits:
            return None
        return min(hits, key=lambda s: (s.crop.cx - x) ** 2 + (s.crop.cy - y) ** 2).id
