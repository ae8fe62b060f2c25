"""The live pose pipeline without Qt: a newest-frame mailbox, a model step, a post step and callbacks.

Why a mailbox and not a queue: a capture thread drops each frame into a one-slot mailbox; a frame the model had no
time for is replaced (counted as dropped), so a slow model shows fewer frames but never falls behind the video.

Two threads: `run()` is the model thread (the app runs it inside a thin QThread, `app.inference.InferenceWorker`);
it starts a post thread ("InferencePost") that, in frame order, smooths the joints, reduces the heatmaps, builds
the `PoseFrame`, records it and hands it to `on_result`. So the model starts the next frame as soon as a pose is
known (bench/pipeline.py). `process()` runs both steps in the caller's thread instead (scripts, tests).

The pipeline owns its estimator and `model_lock`: every call into the estimator (the model step, warming up) holds
the lock, and so must anyone else using the same estimator (the app's labelling assistant takes it), because
`PoseEstimator` is not thread-safe. The model half of a frame is `ModelStep`, which `cpm infer` and the bench
use on their own, so the app, the CLI and the benchmark run one per-frame logic.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cpm_core.detection import Detector, MultiPoseEstimator, make_detector
from cpm_core.estimator import PoseEstimator, PoseResult
from cpm_core.pose_frame import (
    PipelineCounts,
    PoseFrame,
    StageReductions,
    SubjectPose,
    TrackState,
    stage_reductions,
)
from cpm_core.presence import THRESHOLD as PRESENCE_THRESHOLD
from cpm_core.skeleton import Skeleton
from cpm_core.subject_size import subject_too_small
from cpm_core.tracking import KalmanSmoother, SelfTracker
from cpm_core.upright import UprightFollower

POST_QUEUE = 4  # frames the post thread may fall behind before it holds the model back


@dataclass
class FramePacket:
    """One captured frame on its way to the model."""

    index: int
    frame: np.ndarray  # BGR uint8
    captured_at: float  # time.perf_counter()
    restart: bool = False  # a seek, loop or new source: temporal filters must forget the past
    generation: int = 0  # which opened source it came from


class ModelStep:
    """The model half of one frame: the self-tracking crop, the `UprightFollower` (upright models turned the way
    they were trained), and a presence check that makes the follower and the tracker search again when no subject
    is in view. One instance per stream; not thread-safe (the caller holds the estimator's lock).
    `reset_when_absent`: False for estimators without heatmaps (the bench's keypoint teacher), whose presence
    reads 0 and would restart the search on every frame."""

    def __init__(self, estimator, reset_when_absent: bool = True):
        self.estimator = estimator
        self.follower = UprightFollower(estimator)
        self.tracker = SelfTracker()
        self.reset_when_absent = reset_when_absent

    def reset(self) -> None:
        """Forget the stream (a new source, a seek, an unrelated image)."""
        self.tracker.reset()
        self.follower.reset()

    def warm_up(self) -> None:
        """Load and trace what a stream's first frame would otherwise wait for (`UprightFollower.warm_up`)."""
        self.follower.warm_up()

    def single(self, frame: np.ndarray, crop=None, tracking: bool = False) -> tuple[PoseResult, TrackState]:
        """One subject: with `tracking` the self-tracker chooses the crop (else `crop`, None for the whole frame)."""
        if tracking:
            # Lost, a hand model with a palm detector looks for the hand the way the follower does without a crop:
            # the palm's own hand box, not the centred square. Else a small hand in a wide view never scores
            # above the presence threshold there (its crop is mostly background), and the tracker never zooms in.
            crop = (None if self.tracker.lost and self.follower.upright and self.follower.palm is not None
                    else self.tracker.next_crop(frame.shape))
        result = self.follower.predict(frame, crop)
        lost = tracking and not self.tracker.update(result)
        if self.reset_when_absent and result.presence < PRESENCE_THRESHOLD:  # no subject: search afresh next
            self.follower.reset(absent=True)
            if tracking:
                self.tracker.reset()
                lost = True
        return result, TrackState(tracking, lost, self.tracker.score)


@dataclass
class ModelOutput:
    """What the model step hands the post step (everything the post thread needs, nothing it must look up)."""

    packet: FramePacket
    skeleton: Skeleton
    result: PoseResult
    counts: PipelineCounts
    kalman: bool
    started: float  # time.perf_counter() when the model step began
    track: TrackState = field(default_factory=TrackState)
    found: object | None = None  # a detector frame's `MultiResult` (its subjects), else None
    detector: str = ""


def _noop(*_args) -> None:
    pass


class LivePipeline:
    """Mailbox -> model step -> post step -> `on_result`, with the estimator and its lock owned here.

    Controls are thread-safe; the callbacks are called from the pipeline's threads (`on_result` from the post
    thread, in frame order). The app's `ViewerSettings` reach it through `app.viewer.bindings`, never directly."""

    def __init__(self, estimator: PoseEstimator | None = None,
                 detector_factory: Callable[[str], Detector] = make_detector):
        self._cond = threading.Condition()
        self.model_lock = threading.Lock()  # held for every call into the estimator; share it, never bypass it
        self._estimator = estimator
        self._pending: FramePacket | None = None
        self._last: FramePacket | None = None
        self._model_request: str | None = None
        self._stop = False
        self._busy = False
        self._smoother = KalmanSmoother()
        self._step: ModelStep | None = None
        self._tracker_threshold = 1.0
        self._kalman = True
        self._tracking = False
        self._reset = False
        self._recorder = None
        self._detect = False
        self._detector_name = "palm"
        self._max_subjects = 4
        self._detector: Detector | None = None  # created in the model thread on first use (loading a file)
        self._multi: MultiPoseEstimator | None = None
        self.detector_factory = detector_factory  # how a detector is made from its name; tests put a stub here
        self.captured = 0
        self.dropped = 0
        self.processed = 0
        self._post_jobs: queue.Queue = queue.Queue(maxsize=POST_QUEUE)
        self._post_pending = 0  # jobs queued or running (under _cond): idle() waits for them
        self._prepare = estimator is not None  # warm the follower up before the first frame arrives
        self.on_result: Callable[[PoseFrame], None] = _noop
        self.on_frame_failed: Callable[[str], None] = _noop
        self.on_detection_failed: Callable[[str], None] = _noop  # detection went back off; the message says why
        self.on_model_loaded: Callable[[PoseEstimator], None] = _noop
        self.on_model_failed: Callable[[str], None] = _noop

    # --- controls (any thread) ---
    @property
    def estimator(self) -> PoseEstimator | None:
        return self._estimator

    @property
    def follower(self) -> UprightFollower | None:
        """The current model step's follower (None before the first frame or warm-up)."""
        step = self._step
        return step.follower if step is not None else None

    @property
    def detecting(self) -> bool:
        return self._detect

    @property
    def kalman(self) -> bool:
        """Whether frames leave the pipeline showing their smoothed pose."""
        return self._kalman

    def submit(self, packet: FramePacket) -> None:
        """Offer a frame; replaces (drops) a frame the model has not started on yet."""
        with self._cond:
            if self._pending is not None:
                self.dropped += 1
                if self._pending.restart:  # a seek's first frame replaced: the restart is not lost with it
                    packet.restart = True
            self._pending = packet
            self.captured += 1
            self._cond.notify_all()

    def wait_for_slot(self, timeout: float) -> bool:
        """Block until the mailbox is empty (the model took the last frame); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None or self._stop, timeout)

    def idle(self) -> bool:
        """Nothing waiting, running, loading, warming up or being finished."""
        with self._cond:
            return (self._pending is None and not self._busy and self._model_request is None
                    and self._post_pending == 0 and not self._prepare)

    def clear(self) -> None:
        """Forget a waiting frame and the last one (the source changed)."""
        with self._cond:
            self._pending = None
            self._last = None
            self._reset = True

    def _redo_last(self) -> None:  # under _cond: show the current (paused) frame again with new settings
        if self._pending is None and self._last is not None:
            self._pending = self._last
        self._cond.notify_all()

    def set_estimator(self, estimator: PoseEstimator) -> None:
        with self._cond:
            self._estimator = estimator
            self._reset = True
            self._prepare = True
            self._redo_last()

    def request_model(self, path: str | Path) -> None:
        """Load weights in the model thread; answers with `on_model_loaded` or `on_model_failed` (the current
        model stays on failure)."""
        with self._cond:
            self._model_request = str(path)
            self._cond.notify_all()

    def set_kalman(self, enabled: bool) -> None:
        """Show the smoothed pose or not; a paused frame is shown again with the new choice (K on a paused video
        left its overlay saying "pose: smoothed")."""
        with self._cond:
            changed = self._kalman != bool(enabled)
            self._kalman = bool(enabled)
            if changed:
                self._redo_last()

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
            if self._step is not None:
                self._step.tracker.reset()

    def set_tracker_threshold(self, threshold: float) -> None:
        with self._cond:
            self._tracker_threshold = float(threshold)
            if self._step is not None:
                self._step.tracker.threshold = self._tracker_threshold

    def set_detection(self, enabled: bool, detector: str | None = None, max_subjects: int | None = None) -> None:
        """Detection on/off, which detector and how many subjects; a new detector is created lazily in the model
        thread on the next frame (loading it can take a moment or fail)."""
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
            self._redo_last()

    def reset_filters(self) -> None:
        with self._cond:
            self._reset = True

    def set_recorder(self, recorder):
        """Install (or with None, remove) the recorder that gets every processed frame; returns the old one."""
        with self._cond:
            old, self._recorder = self._recorder, recorder
            return old

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    # --- the model thread ---
    def run(self) -> None:
        """The model loop (blocks until `stop()`), with the post thread beside it."""
        post = threading.Thread(target=self._post_loop, name="InferencePost", daemon=True)
        post.start()
        try:
            self._run_loop()
        finally:
            self._post_jobs.put(None)  # every queued frame is still finished (recorded, handed on) first
            post.join()

    def process(self, packet: FramePacket) -> PoseFrame | None:
        """Both steps of one frame in the caller's thread (no post thread): the frame, or None if it failed."""
        with self._cond:
            if self._take(packet):
                self._smoother.reset()
            estimator = self._estimator
        if estimator is None:
            return None
        output = self.model_step(packet, estimator)
        return self.finish(output) if output is not None else None

    def _take(self, packet: FramePacket) -> bool:
        """Under _cond: a frame enters the model. On a restart (new source, seek, loop) the tracker, follower and
        identities forget the past and True is returned: the caller resets the smoother in frame order."""
        restart = self._reset or packet.restart
        if restart:
            if self._step is not None:
                self._step.reset()
            if self._multi is not None:
                self._multi.reset()  # new source or seek: ids start again at 1
            self._reset = False
        return restart

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
                    restart = self._take(packet)
                else:  # only warming up was asked for
                    self._prepare = False
                self._cond.notify_all()  # wakes a capture thread waiting for the slot
            if restart:
                self._post(self._reset_smoother)  # in order with the earlier frames still being finished
            try:
                if request:
                    self._load(request)
                elif packet is not None:
                    output = self.model_step(packet, estimator)
                    if output is not None:
                        self._post(lambda out=output: self.finish(out))
                else:
                    self._warm_up(estimator)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _load(self, path: str) -> None:
        try:
            estimator = PoseEstimator.from_path(path)
        except Exception as exc:  # noqa: BLE001 - any failure to load is reported, the old model stays
            self.on_model_failed(f"{path}: {exc}".splitlines()[0])
            return
        self.set_estimator(estimator)
        self.on_model_loaded(estimator)

    def _step_for(self, estimator) -> ModelStep:
        with self._cond:
            if self._step is None or self._step.estimator is not estimator:
                self._step = ModelStep(estimator)
                self._step.tracker.threshold = self._tracker_threshold
            return self._step

    def _warm_up(self, estimator: PoseEstimator) -> None:
        if not isinstance(estimator, PoseEstimator):  # stand-ins (tests' slow models) need none
            return
        try:
            with self.model_lock:
                self._step_for(estimator).warm_up()
        except Exception as exc:  # noqa: BLE001 - a model that fails here is reported; frames then retry
            self.on_frame_failed(f"warming the model up: {type(exc).__name__}: {exc}".splitlines()[0])

    def _multi_for(self, estimator: PoseEstimator) -> MultiPoseEstimator | None:
        """The detector pipeline for this estimator, made on first use; None (and detection switched off, with
        `on_detection_failed`) when the detector cannot be created here."""
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
                self.on_detection_failed(f"detector {name!r} unavailable: {exc}".splitlines()[0])
                return None
        with self._cond:
            if self._detector_name != name:  # the choice changed while it loaded; the next frame retries
                return None
            self._detector = detector
            self._multi = MultiPoseEstimator(estimator, detector, self._max_subjects)
            self._multi.tracker.process_noise = self._smoother.process_noise
            self._multi.tracker.measurement_noise = self._smoother.measurement_noise
            return self._multi

    def model_step(self, packet: FramePacket, estimator) -> ModelOutput | None:
        """The model half of a frame (holding `model_lock`): detector + batched CPM + identities when detecting,
        else the single-subject `ModelStep`. A failure is reported and gives None; the thread goes on."""
        t0 = time.perf_counter()
        frame = packet.frame
        multi = self._multi_for(estimator) if self._detect else None
        step = self._step_for(estimator)
        try:
            with self.model_lock:
                if multi is not None:
                    found = multi.process(frame)
                    # Nothing found: the whole frame's heatmaps keep the views alive; no pose is drawn.
                    result = found.subjects[0].result if found.subjects else step.follower.predict(frame)
                    track = TrackState()
                else:
                    found = None
                    with self._cond:
                        tracking = self._tracking
                    result, track = step.single(frame, tracking=tracking)
        except Exception as exc:  # noqa: BLE001 - a corrupt frame or misfit model must not end the thread
            self.on_frame_failed(f"frame {packet.index}: {type(exc).__name__}: {exc}".splitlines()[0])
            return None
        self._last = packet
        with self._cond:
            self.processed += 1
            counts = PipelineCounts(self.captured, self.dropped, self.processed)
        return ModelOutput(packet, estimator.card.skeleton, result, counts, self._kalman, t0, track, found,
                           multi.detector.name if multi is not None else "")

    # --- the post thread ---
    def _post(self, job: Callable[[], None]) -> None:
        with self._cond:
            self._post_pending += 1
        self._post_jobs.put(job)  # outside the lock: blocks only while the post thread is POST_QUEUE behind

    def _post_loop(self) -> None:
        while (job := self._post_jobs.get()) is not None:
            try:
                job()
            except Exception as exc:  # noqa: BLE001 - one bad frame's bookkeeping must not end the thread
                self.on_frame_failed(f"post-processing: {type(exc).__name__}: {exc}".splitlines()[0])
            finally:
                with self._cond:
                    self._post_pending -= 1
                    self._cond.notify_all()

    def _reset_smoother(self) -> None:
        with self._cond:
            self._smoother.reset()

    def finish(self, out: ModelOutput) -> PoseFrame:
        """The post half of a frame: smoothing, the views' reductions, the PoseFrame, recording, `on_result`.
        A frame without a subject (presence below the threshold) restarts the smoothing, so a hand that comes
        back is not dragged in from where the last one was, and its raw and smoothed joints have no position
        (confidences stay; `result.keypoints` keeps the model's guess): recordings, like the views, draw no
        pose. A body model's whole-frame pose of a person too small for it (`cpm_core.subject_size`) alike.
        A detector frame's own pose fields are its lowest id's (the default selection), so recording, plots and
        the single-subject code paths work unchanged."""
        packet, result = out.packet, out.result
        timings = dict(result.timings)
        if out.found is not None:
            subjects = [SubjectPose.from_tracked(s) for s in sorted(out.found.subjects, key=lambda s: s.id)]
            timings.update(out.found.timings)
            timings["model"] = out.found.timings.get("pose", timings.get("model", 0.0))
            if subjects:
                first = subjects[0]
                raw, smoothed, crop = first.raw, first.smoothed, first.crop
                reductions = StageReductions(first.stage_max, first.stage_conf, first.joint_peaks)
            else:
                raw = smoothed = np.full_like(result.keypoints, np.nan)
                crop, reductions = result.crop.box, stage_reductions(result)
            presence, small = 1.0, False
        else:
            subjects, reductions, crop = None, None, result.crop.box
            presence = result.presence
            small = subject_too_small(result, packet.frame.shape, out.skeleton)
            raw = result.keypoints
            with self._cond:
                if presence >= PRESENCE_THRESHOLD and not small:
                    smoothed = self._smoother.update(raw)
                else:
                    self._smoother.reset()
                    raw = np.array(raw, dtype=np.float32, copy=True)
                    raw[:, :2] = np.nan
                    smoothed = raw
        timings["worker"] = (time.perf_counter() - out.started) * 1e3
        pose = PoseFrame.build(
            index=packet.index, generation=packet.generation, frame_bgr=packet.frame, result=result,
            skeleton=out.skeleton, raw=raw, smoothed=smoothed, kalman=out.kalman, crop=crop, counts=out.counts,
            latency_ms=(time.perf_counter() - packet.captured_at) * 1e3, timings=timings, track=out.track,
            reductions=reductions,
            subjects=subjects, detector=out.detector, presence=presence, small_subject=small,
            restart=packet.restart)
        self._record(packet, pose)
        self.on_result(pose)
        return pose

    def _record(self, packet: FramePacket, pose: PoseFrame) -> None:
        with self._cond:
            recorder = self._recorder
            if recorder is not None:
                try:
                    recorder.write(packet.frame, pose)
                except Exception as exc:  # noqa: BLE001 - a full disk must not stop the viewer
                    self._recorder = None
                    self.on_frame_failed(f"recording stopped: {exc}")
