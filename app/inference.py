"""InferenceWorker: the thin QThread around `cpm_core.live_pipeline.LivePipeline`.

All per-frame logic (the newest-frame mailbox, the model step, the post step, recording) is the Qt-free pipeline;
this class only runs its model loop in a QThread and turns its callbacks into Qt signals, which reach the GUI
thread queued. `PoseFrame` and its parts live in `cpm_core.pose_frame`; the post step is the pipeline's public
`LivePipeline.finish`.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QThread, Signal

from cpm_core.estimator import PoseEstimator
from cpm_core.live_pipeline import FramePacket, LivePipeline

__all__ = ["InferenceWorker"]


class InferenceWorker(QThread):
    """Runs `pipeline.run()` in this thread; controls go to the pipeline (thread-safe), results come back as
    signals. `pipeline` is public: it is the seam for settings bindings, the estimator lock and tests."""

    resultReady = Signal(object)  # PoseFrame
    modelLoaded = Signal(object)  # the new PoseEstimator
    modelFailed = Signal(str)
    frameFailed = Signal(str)
    detectionFailed = Signal(str)  # the detector cannot run; the pipeline went back to single-subject mode

    def __init__(self, estimator: PoseEstimator | None = None, parent=None, pipeline: LivePipeline | None = None):
        super().__init__(parent)
        self.pipeline = pipeline if pipeline is not None else LivePipeline(estimator)
        self.pipeline.on_result = self.resultReady.emit
        self.pipeline.on_model_loaded = self.modelLoaded.emit
        self.pipeline.on_model_failed = self.modelFailed.emit
        self.pipeline.on_frame_failed = self.frameFailed.emit
        self.pipeline.on_detection_failed = self.detectionFailed.emit

    def run(self) -> None:
        self.pipeline.run()

    # The few controls the window and scripts use, forwarded (everything else: `worker.pipeline`).
    @property
    def estimator(self) -> PoseEstimator | None:
        return self.pipeline.estimator

    @property
    def captured(self) -> int:
        return self.pipeline.captured

    @property
    def dropped(self) -> int:
        return self.pipeline.dropped

    @property
    def processed(self) -> int:
        return self.pipeline.processed

    def submit(self, packet: FramePacket) -> None:
        self.pipeline.submit(packet)

    def wait_for_slot(self, timeout: float) -> bool:
        return self.pipeline.wait_for_slot(timeout)

    def idle(self) -> bool:
        return self.pipeline.idle()

    def set_estimator(self, estimator: PoseEstimator) -> None:
        self.pipeline.set_estimator(estimator)

    def request_model(self, path: str | Path) -> None:
        self.pipeline.request_model(path)

    def stop(self) -> None:
        self.pipeline.stop()
