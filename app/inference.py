"""InferenceWorker: runs the model in its own thread on the newest captured frame only.

The capture thread drops each frame into a one-slot mailbox; a frame the model had no time for is replaced
(counted as dropped) rather than queued, so a slow model shows fewer frames but never falls behind the video.
Everything per frame that is not drawing happens here too: the self-tracking crop, Kalman smoothing, the
colour conversion and per-stage reductions the views need, and recording. The GUI thread only draws.
That per-frame work after the model runs on a second thread (`InferencePost`), in frame order, so the model
thread starts the next frame as soon as its pose is known (with the views drawing nothing, the pipeline then
outruns the bare model, whose decoding does not overlap its model: bench/pipeline.py).
With detection on, the worker runs `cpm_core.detection.MultiPoseEstimator` instead (detector, one batched CPM
call over all subjects' crops, identity tracking), so several subjects anywhere in the frame get poses.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QThread, Signal

from app.capture import FramePacket
from cpm_core.detection import Detector, MultiPoseEstimator, make_detector
from cpm_core.estimator import PoseEstimator, PoseResult
from cpm_core.orientation import UprightFollower
from cpm_core.preprocess import CropBox
from cpm_core.presence import THRESHOLD as PRESENCE_THRESHOLD
from cpm_core.skeleton import Skeleton
from cpm_core.subject_size import subject_too_small
from cpm_core.tracking import KalmanSmoother, SelfTracker


def stage_reductions(result: PoseResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stage_max (stages, h, w), stage_conf (stages,), joint_peaks (J,)): what the heatmap views draw, computed
    here so the GUI thread does no reductions over full heatmap stacks."""
    joint_maps = np.nan_to_num(result.heatmaps[..., :result.num_joints], nan=0.0)
    peaks = joint_maps.max(axis=(-3, -2))  # (stages, J)
    return joint_maps.max(axis=-1), peaks.mean(axis=-1), peaks[-1]


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


class InferenceWorker(QThread):
    resultReady = Signal(object)  # PoseFrame
    modelLoaded = Signal(object)  # the new PoseEstimator
    modelFailed = Signal(str)
    frameFailed = Signal(str)
    detectionFailed = Signal(str)  # the detector cannot run; the worker went back to single-subject mode

    def __init__(self, estimator: PoseEstimator | None = None, parent=None):
        super().__init__(parent)
        self._cond = threading.Condition()
        self._estimator = estimator
        self._pending: FramePacket | None = None
        self._last: FramePacket | None = None
        self._model_request: str | None = None
        self._stop = False
        self._busy = False
        self._smoother = KalmanSmoother()
        self._tracker = SelfTracker()
        self._follower: UprightFollower | None = None  # turns crops upright for models trained that way
        self._kalman = True
        self._tracking = False
        self._reset = False
        self._recorder = None
        self._detect = False
        self._detector_name = "palm"
        self._max_subjects = 4
        self._detector: Detector | None = None  # created in this thread on first use (loading a model file)
        self._multi: MultiPoseEstimator | None = None
        # How a detector is made from its name; tests put a stub here.
        self.detector_factory: Callable[[str], Detector] = make_detector
        self.captured = 0
        self.dropped = 0
        self.processed = 0
        # Post-processing jobs (closures) for the InferencePost thread, in frame order; bounded so a stalled
        # post thread holds the model back instead of queueing frames without end.
        self._post_jobs: queue.Queue = queue.Queue(maxsize=4)
        self._post_pending = 0  # jobs queued or running (under _cond): idle() waits for them
        self._prepare = estimator is not None  # warm the follower up before the first frame arrives

    # --- any thread ---
    @property
    def estimator(self) -> PoseEstimator | None:
        return self._estimator

    def submit(self, packet: FramePacket) -> None:
        """Offer a frame; replaces (drops) a frame the model has not started on yet."""
        with self._cond:
            if self._pending is not None:
                self.dropped += 1
            self._pending = packet
            self.captured += 1
            self._cond.notify_all()

    def wait_for_slot(self, timeout: float) -> bool:
        """Block until the mailbox is empty (the model took the last frame); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None or self._stop, timeout)

    def idle(self) -> bool:
        with self._cond:
            return (self._pending is None and not self._busy and self._model_request is None
                    and self._post_pending == 0 and not self._prepare)

    def clear(self) -> None:
        """Forget a waiting frame and the last one (the source changed)."""
        with self._cond:
            self._pending = None
            self._last = None
            self._reset = True

    def set_estimator(self, estimator: PoseEstimator) -> None:
        with self._cond:
            self._estimator = estimator
            self._reset = True
            self._prepare = True
            if self._pending is None and self._last is not None:
                self._pending = self._last  # show the current frame through the new model
            self._cond.notify_all()

    def request_model(self, path: str | Path) -> None:
        """Load weights in this thread (building and warming a model takes a moment); answers with
        modelLoaded or modelFailed, and keeps the current model on failure."""
        with self._cond:
            self._model_request = str(path)
            self._cond.notify_all()

    def set_kalman(self, enabled: bool) -> None:
        self._kalman = bool(enabled)

    def set_kalman_noise(self, process: float, measurement: float) -> None:
        with self._cond:
            self._smoother.process_noise = process
            self._smoother.measurement_noise = measurement
            if self._multi is not None:  # new tracks take these; running filters keep theirs
                self._multi.tracker.process_noise = process
                self._multi.tracker.measurement_noise = measurement

    def set_tracking(self, enabled: bool) -> None:
        with self._cond:
            self._tracking = bool(enabled)
            self._tracker.reset()

    def set_detection(self, enabled: bool, detector: str | None = None, max_subjects: int | None = None) -> None:
        """Detection on/off, which detector and how many subjects; a new detector name is created lazily in
        the worker thread on the next frame (loading it can take a moment or fail)."""
        with self._cond:
            self._detect = bool(enabled)
            if detector is not None and detector != self._detector_name:
                self._detector_name = detector
                self._detector = None
                self._multi = None
            if max_subjects is not None:
                self._max_subjects = max(1, int(max_subjects))
                if self._multi is not None:
                    self._multi.max_subjects = self._max_subjects
            if self._pending is None and self._last is not None:
                self._pending = self._last  # show the current (paused) frame in the new mode
            self._cond.notify_all()

    @property
    def detecting(self) -> bool:
        return self._detect

    def set_tracker_threshold(self, threshold: float) -> None:
        self._tracker.threshold = float(threshold)

    def reset_filters(self) -> None:
        with self._cond:
            self._reset = True

    def set_recorder(self, recorder) -> None:
        """Install (or with None, remove and return) the recorder that gets every processed frame."""
        with self._cond:
            old, self._recorder = self._recorder, recorder
            return old

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    # --- worker thread ---
    def _load(self, path: str) -> None:
        try:
            estimator = PoseEstimator.from_path(path)
        except Exception as exc:  # noqa: BLE001 - any failure to load is reported, the old model stays
            self.modelFailed.emit(f"{path}: {exc}".splitlines()[0])
            return
        self.set_estimator(estimator)
        self.modelLoaded.emit(estimator)

    def run(self) -> None:
        post = threading.Thread(target=self._post_loop, name="InferencePost", daemon=True)
        post.start()
        try:
            self._run_loop()
        finally:
            self._post_jobs.put(None)  # every queued frame is still finished (recorded, emitted) first
            post.join()

    def _post(self, job: Callable[[], None]) -> None:
        with self._cond:
            self._post_pending += 1
        self._post_jobs.put(job)  # outside the lock: blocks only while the post thread is 4 frames behind

    def _post_loop(self) -> None:
        while (job := self._post_jobs.get()) is not None:
            try:
                job()
            except Exception as exc:  # noqa: BLE001 - one bad frame's bookkeeping must not end the thread
                self.frameFailed.emit(f"post-processing: {type(exc).__name__}: {exc}".splitlines()[0])
            finally:
                with self._cond:
                    self._post_pending -= 1
                    self._cond.notify_all()

    def _reset_smoother(self) -> None:
        with self._cond:
            self._smoother.reset()

    def _run_loop(self) -> None:
        while True:
            restart = False
            request = packet = None
            with self._cond:
                while not (self._stop or self._model_request or (self._pending and self._estimator)
                           or (self._prepare and self._estimator)):
                    self._cond.wait(0.5)
                if self._stop:
                    return
                self._busy = True
                estimator = self._estimator
                if self._model_request:
                    request, self._model_request = self._model_request, None
                elif self._pending is not None and estimator is not None:
                    packet, self._pending = self._pending, None
                    self._prepare = False  # this frame pays for any warming up itself
                    restart = self._reset or packet.restart
                    if restart:
                        self._tracker.reset()
                        if self._follower is not None:
                            self._follower.reset()
                        if self._multi is not None:
                            self._multi.reset()  # new source or seek: ids start again at 1
                        self._reset = False
                else:  # only warming up was asked for
                    self._prepare = False
                self._cond.notify_all()  # wakes a capture thread waiting for the slot
            if restart:
                self._post(self._reset_smoother)  # in order with the earlier frames still being finished
            try:
                if request:
                    self._load(request)
                elif packet is not None:
                    self._process(packet, estimator)
                else:
                    self._warm_up(estimator)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _warm_up(self, estimator: PoseEstimator) -> None:
        """Load and trace what a source's first frame would otherwise wait for (see UprightFollower.warm_up)."""
        if not isinstance(estimator, PoseEstimator):  # stand-ins (tests' slow models) need none
            return
        try:
            self._follower_for(estimator).warm_up()
        except Exception as exc:  # noqa: BLE001 - a model that fails here is reported; frames then retry
            self.frameFailed.emit(f"warming the model up: {type(exc).__name__}: {exc}".splitlines()[0])

    def _follower_for(self, estimator: PoseEstimator) -> UprightFollower:
        if self._follower is None or self._follower.estimator is not estimator:
            self._follower = UprightFollower(estimator)
        return self._follower

    def _multi_for(self, estimator: PoseEstimator) -> MultiPoseEstimator | None:
        """The detector pipeline for this estimator, made on first use; None (and detection switched off, with
        detectionFailed) when the detector cannot be created here."""
        with self._cond:
            name, multi, detector = self._detector_name, self._multi, self._detector
        if multi is not None and multi.estimator is estimator:
            return multi
        if detector is None:
            try:
                detector = self.detector_factory(name)
            except Exception as exc:  # noqa: BLE001 - DetectorUnavailable, a broken model file: all say why
                with self._cond:
                    self._detect = False
                self.detectionFailed.emit(f"detector {name!r} unavailable: {exc}".splitlines()[0])
                return None
        with self._cond:
            if self._detector_name != name:  # the choice changed while it loaded; the next frame retries
                return None
            self._detector = detector
            self._multi = MultiPoseEstimator(estimator, detector, self._max_subjects)
            self._multi.tracker.process_noise = self._smoother.process_noise
            self._multi.tracker.measurement_noise = self._smoother.measurement_noise
            return self._multi

    def _process_detect(self, packet: FramePacket, estimator: PoseEstimator, multi: MultiPoseEstimator) -> None:
        """Detector + batched CPM + identities; the frame's own pose fields are the lowest id's (the default
        selection) so recording, plots and the single-subject code paths keep working unchanged."""
        t0 = time.perf_counter()
        frame = packet.frame
        try:
            found = multi.process(frame)
            subjects = []
            for s in sorted(found.subjects, key=lambda s: s.id):
                stage_max, stage_conf, joint_peaks = stage_reductions(s.result)
                subjects.append(SubjectPose(s.id, s.score, s.box, s.crop, s.result, s.result.keypoints,
                                            np.asarray(s.keypoints, dtype=np.float32), stage_max, stage_conf,
                                            joint_peaks, s.detection.label, s.result.presence))
            if subjects:
                first = subjects[0]
                result, raw, smoothed = first.result, first.raw, first.smoothed
                stage_max, stage_conf, joint_peaks = first.stage_max, first.stage_conf, first.joint_peaks
            else:  # nothing found: the whole frame's heatmaps keep the views alive, no pose is drawn
                result = self._follower_for(estimator).predict(frame)
                raw = smoothed = np.full_like(result.keypoints, np.nan)
                stage_max, stage_conf, joint_peaks = stage_reductions(result)
        except Exception as exc:  # noqa: BLE001 - a corrupt frame or misfit model must not end the thread
            self.frameFailed.emit(f"frame {packet.index}: {type(exc).__name__}: {exc}".splitlines()[0])
            return
        self._last = packet
        timings = dict(result.timings)
        timings.update(found.timings)
        timings["model"] = found.timings.get("pose", timings.get("model", 0.0))
        timings["worker"] = (time.perf_counter() - t0) * 1e3
        self.processed += 1
        pose = PoseFrame(
            index=packet.index, generation=packet.generation, bgra=cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA),
            result=result, skeleton=estimator.card.skeleton, raw=raw, smoothed=smoothed, kalman=self._kalman,
            crop=subjects[0].crop if subjects else result.crop.box, tracking=False, tracker_lost=False,
            tracker_score=0.0, stage_max=stage_max, stage_conf=stage_conf, joint_peaks=joint_peaks,
            latency_ms=(time.perf_counter() - packet.captured_at) * 1e3, captured=self.captured,
            dropped=self.dropped, processed=self.processed, timings=timings, detecting=True, subjects=subjects,
            detector=multi.detector.name)
        self._post(lambda: self._emit(packet, pose))  # in order with the single-subject frames

    def _emit(self, packet: FramePacket, pose: PoseFrame) -> None:
        with self._cond:
            recorder = self._recorder
            if recorder is not None:
                try:
                    recorder.write(packet.frame, pose)
                except Exception as exc:  # noqa: BLE001 - a full disk must not stop the viewer
                    self._recorder = None
                    self.frameFailed.emit(f"recording stopped: {exc}")
        self.resultReady.emit(pose)

    def _process(self, packet: FramePacket, estimator: PoseEstimator) -> None:
        if self._detect:
            multi = self._multi_for(estimator)
            if multi is not None:
                self._process_detect(packet, estimator, multi)
                return
        t0 = time.perf_counter()
        frame = packet.frame
        tracking = self._tracking
        try:
            crop = self._tracker.next_crop(frame.shape) if tracking else None
            result = self._follower_for(estimator).predict(frame, crop)
        except Exception as exc:  # noqa: BLE001 - a corrupt frame or misfit model must not end the thread
            self.frameFailed.emit(f"frame {packet.index}: {type(exc).__name__}: {exc}".splitlines()[0])
            return
        self._last = packet
        presence = result.presence
        lost = False
        if tracking:
            lost = not self._tracker.update(result)
        if presence < PRESENCE_THRESHOLD:  # no subject in view: search afresh on the next frame
            self._follower_for(estimator).reset()
            if tracking:
                self._tracker.reset()
                lost = True
        self.processed += 1
        counts = (self.captured, self.dropped, self.processed)
        state = (self._kalman, tracking, lost, self._tracker.score)
        self._post(lambda: self._finish(packet, estimator, result, counts, state, t0, presence))

    def _finish(self, packet: FramePacket, estimator: PoseEstimator, result: PoseResult,
                counts: tuple[int, int, int], state: tuple[bool, bool, bool, float], t0: float,
                presence: float = 1.0) -> None:
        """The InferencePost half of a frame: smoothing, what the views need, recording, emission. A frame
        without a subject (presence below the threshold) restarts the smoothing, so a hand that comes back
        is not dragged in from where the last one was, and its raw and smoothed joints have no position (their
        confidences stay; `result.keypoints` keeps the model's guess): recordings, like the views, draw no pose.
        A body model's whole-frame pose of a person too small for it (`cpm_core.subject_size`) is treated alike."""
        kalman, tracking, lost, score = state
        raw = result.keypoints
        small = subject_too_small(result, packet.frame.shape, estimator.card.skeleton)
        with self._cond:
            if presence >= PRESENCE_THRESHOLD and not small:
                smoothed = self._smoother.update(raw)
            else:
                self._smoother.reset()
                raw = np.array(raw, dtype=np.float32, copy=True)
                raw[:, :2] = np.nan
                smoothed = raw
        j = result.num_joints
        joint_maps = np.nan_to_num(result.heatmaps[..., :j], nan=0.0)
        stage_max = joint_maps.max(axis=-1)
        peaks = joint_maps.max(axis=(-3, -2))  # (stages, J)
        bgra = cv2.cvtColor(packet.frame, cv2.COLOR_BGR2BGRA)
        timings = dict(result.timings)
        timings["worker"] = (time.perf_counter() - t0) * 1e3
        captured, dropped, processed = counts
        pose = PoseFrame(
            index=packet.index, generation=packet.generation, bgra=bgra, result=result,
            skeleton=estimator.card.skeleton, raw=raw, smoothed=smoothed,
            kalman=kalman, crop=result.crop.box, tracking=tracking, tracker_lost=lost,
            tracker_score=score, stage_max=stage_max, stage_conf=peaks.mean(axis=-1),
            joint_peaks=peaks[-1], latency_ms=(time.perf_counter() - packet.captured_at) * 1e3,
            captured=captured, dropped=dropped, processed=processed, timings=timings, presence=presence,
            small_subject=small)
        self._emit(packet, pose)
