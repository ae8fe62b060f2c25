"""Model-assisted labelling: run the current model over project frames in a worker thread.

The GUI never waits on the model: the worker reads each image, predicts, and hands the joints back by signal;
the workspace turns each result into an undoable edit that marks the joints predicted. Cancelling stops after
the frame in flight; frames already done keep their predictions.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import Signal

from app.background import JobControl, WorkerJob
from cpm_core.upright import UprightFollower


class PredictionWorker(WorkerJob):
    """Predicts joints for [(frame index, image path)] jobs with one estimator, in order: a `WorkerJob` (the job
    `app.background.run_in_worker` starts) whose function reports each frame. `lock` is the estimator owner's
    (the live pipeline's `model_lock` in the app): held for every prediction, so the viewer never runs the same
    estimator at the same time."""

    framePredicted = Signal(int, object)  # frame index, (J, 3) keypoints in image pixels + confidence
    progressed = Signal(int, int)  # done, total
    failed = Signal(str)

    def __init__(self, estimator, jobs: list[tuple[int, Path]], lock: threading.Lock | None = None, parent=None):
        super().__init__(self._predict_all, parent)
        self.estimator = estimator
        self.follower = UprightFollower(estimator)  # upright models: each frame's hand angle and side found afresh
        self.jobs = list(jobs)
        self.lock = lock or threading.Lock()
        self.done = 0

    def _predict_all(self, control: JobControl) -> int:
        total = len(self.jobs)
        for k, (index, path) in enumerate(self.jobs):
            if control.cancelled:
                break
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                self.failed.emit(f"{path}: cannot read the image; skipped")
            else:
                try:
                    with self.lock:
                        self.follower.reset()
                        result = self.follower.predict(frame)
                except Exception as exc:  # noqa: BLE001 - any model failure becomes a message, the GUI lives on
                    self.failed.emit(f"prediction failed on {Path(path).name}: {exc}")
                    break
                self.framePredicted.emit(index, np.asarray(result.keypoints, dtype=np.float64))
            self.done = k + 1
            self.progressed.emit(k + 1, total)
        return self.done
