"""InferenceWorker: runs the model in its own thread on the newest captured frame only.

The capture thread drops each frame into a one-slot mailbox; a frame the model had no time for is replaced
(counted as dropped) rather than queued, so a slow model shows fewer frames but never falls behind the video.
Everything per frame that is not drawing happens here too: the self-tracking crop, Kalman smoothing, the
colour conversion and per-stage reductions the views need, and recording. The GUI thread only draws.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QThread, Signal

from app.capture import FramePacket
from cpm_core.estimator import PoseEstimator, PoseResult
from cpm_core.preprocess import CropBox
from cpm_core.skeleton import Skeleton
from cpm_core.tracking import KalmanSmoother, SelfTracker


@dataclass
class PoseFrame:
    """Everything the views need to draw one frame, computed off the GUI thread."""

    index: int
    generation: int
    rgb: np.ndarray  # (H, W, 3) uint8, for display
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

    @property
    def shown(self) -> np.ndarray:
        return self.smoothed if self.kalman else self.raw


class InferenceWorker(QThread):
    resultReady = Signal(object)  # PoseFrame
    modelLoaded = Signal(object)  # the new PoseEstimator
    modelFailed = Signal(str)
    frameFailed = Signal(str)

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
        self._kalman = True
        self._tracking = False
        self._reset = False
        self._recorder = None
        self.captured = 0
        self.dropped = 0
        self.processed = 0

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
            return self._pending is None and not self._busy and self._model_request is None

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

    def set_tracking(self, enabled: bool) -> None:
        with self._cond:
            self._tracking = bool(enabled)
            self._tracker.reset()

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
        while True:
            with self._cond:
                while not (self._stop or self._model_request or (self._pending and self._estimator)):
                    self._cond.wait(0.5)
                if self._stop:
                    return
                request, self._model_request = self._model_request, None
                if request:
                    self._busy = True
                    packet = None
                else:
                    packet, self._pending = self._pending, None
                    self._busy = True
                    estimator = self._estimator
                    if self._reset or packet.restart:
                        self._smoother.reset()
                        self._tracker.reset()
                        self._reset = False
                self._cond.notify_all()  # wakes a capture thread waiting for the slot
            try:
                if request:
                    self._load(request)
                else:
                    self._process(packet, estimator)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _process(self, packet: FramePacket, estimator: PoseEstimator) -> None:
        t0 = time.perf_counter()
        frame = packet.frame
        tracking = self._tracking
        try:
            crop = self._tracker.next_crop(frame.shape) if tracking else None
            result = estimator.predict(frame, crop=crop)
        except Exception as exc:  # noqa: BLE001 - a corrupt frame or misfit model must not end the thread
            self.frameFailed.emit(f"frame {packet.index}: {type(exc).__name__}: {exc}".splitlines()[0])
            return
        self._last = packet
        lost = False
        if tracking:
            lost = not self._tracker.update(result)
        raw = result.keypoints
        with self._cond:
            smoothed = self._smoother.update(raw)
        j = result.num_joints
        joint_maps = np.nan_to_num(result.heatmaps[..., :j], nan=0.0)
        stage_max = joint_maps.max(axis=-1)
        peaks = joint_maps.max(axis=(-3, -2))  # (stages, J)
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        timings = dict(result.timings)
        timings["worker"] = (time.perf_counter() - t0) * 1e3
        self.processed += 1
        pose = PoseFrame(
            index=packet.index, generation=packet.generation, rgb=rgb, result=result,
            skeleton=estimator.card.skeleton, raw=raw, smoothed=smoothed,
            kalman=self._kalman, crop=result.crop.box, tracking=tracking, tracker_lost=lost,
            tracker_score=self._tracker.score, stage_max=stage_max, stage_conf=peaks.mean(axis=-1),
            joint_peaks=peaks[-1], latency_ms=(time.perf_counter() - packet.captured_at) * 1e3,
            captured=self.captured, dropped=self.dropped, processed=self.processed, timings=timings)
        with self._cond:
            recorder = self._recorder
            if recorder is not None:
                try:
                    recorder.write(packet.frame, pose)
                except Exception as exc:  # noqa: BLE001 - a full disk must not stop the viewer
                    self._recorder = None
                    self.frameFailed.emit(f"recording stopped: {exc}")
        self.resultReady.emit(pose)
