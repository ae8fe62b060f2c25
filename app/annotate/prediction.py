"""The Annotate tab's model-assisted labelling: predict this frame (P) or every untouched frame (Shift+P).

A mixin of `AnnotationWorkspace` (app/annotate/workspace.py). Predictions run in a `PredictionWorker` thread that
holds the workspace's `model_lock` (the live pipeline's in the app), so the viewer and the assistant never run
one estimator at once; each result is pushed as an undoable edit, and its confidences are kept in memory
(`confidence`) for "Least confident" (Shift+N).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QProgressDialog,
)

from app.annotate.assist import PredictionWorker


class PredictionMixin:
    """Running the labelling assistant for `AnnotationWorkspace`, with a cancellable progress dialog."""

    # ------------------------------------------------------------------ model-assisted labelling
    def _start_prediction(self, indices: list[int], dialog: bool) -> PredictionWorker | None:
        if self.project is None:
            return None
        if self.worker is not None and self.worker.isRunning():
            self._status("A prediction is already running")
            return None
        est = self.estimator_provider()
        if est is None:
            self._error("no model loaded: load one from the Model menu to predict joints")
            return None
        if est.card.skeleton.num_joints != self.project.num_joints:
            self._error(f"the model predicts {est.card.skeleton.num_joints} joints ({est.card.skeleton.name}); "
                        f"this project's skeleton {self.project.skeleton.name!r} has {self.project.num_joints}")
            return None
        jobs = [(i, self.project.image_path(i)) for i in indices]
        worker = PredictionWorker(est, jobs, self.model_lock, self)
        worker.framePredicted.connect(self._on_predicted)
        worker.failed.connect(self._error)
        worker.finished.connect(self._on_prediction_finished)
        self.worker = worker
        if dialog:
            self.progress = QProgressDialog(f"Predicting joints on {len(jobs)} frames…", "Cancel", 0, len(jobs), self)
            self.progress.setWindowTitle("Predict unlabelled frames")
            self.progress.setWindowModality(Qt.WindowModality.WindowModal)
            self.progress.setMinimumDuration(0)
            self.progress.canceled.connect(worker.cancel)
            worker.progressed.connect(self._on_progress)
        worker.start()
        return worker

    def predict_current(self) -> PredictionWorker | None:
        """Fill the current frame's unplaced (and still predicted) joints with the model's, in the background."""
        return self._start_prediction([self.index], dialog=False)

    def predict_unlabelled(self, dialog: bool = True) -> PredictionWorker | None:
        """Predict every frame nobody has touched (no joint placed by a person), with a cancellable progress."""
        if self.project is None:
            return None
        todo = [i for i in range(len(self.project)) if not self.project.is_labelled(i)
                and not (self.project.state(i).placed & ~self.project.state(i).predicted).any()]
        if not todo:
            self._status("No unlabelled frame left to predict")
            return None
        return self._start_prediction(todo, dialog)

    def _on_progress(self, done: int, total: int) -> None:
        # A modal QProgressDialog's setValue runs the event loop, which may deliver `finished` and delete the
        # dialog under our feet (a crash seen on a loaded machine): finishing waits until setValue is back.
        if self.progress is not None and not self._setting_progress:
            self._setting_progress = True
            try:
                self.progress.setValue(done)
            finally:
                self._setting_progress = False

    def _on_predicted(self, index: int, keypoints: np.ndarray) -> None:
        if self.project is None or index >= len(self.project):
            return
        try:
            after = self.project.predicted_state(index, keypoints)
        except ValueError as exc:
            self._error(str(exc))
            return
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim == 2 and kp.shape[1] > 2:  # (J, 3): x, y, the model's confidence
            self.confidence[index] = np.clip(np.nan_to_num(kp[:, 2]), 0.0, 1.0)
        self._push(after, "predict joints", index=index)

    def _on_prediction_finished(self) -> None:
        if self._setting_progress:
            QTimer.singleShot(0, self._on_prediction_finished)
            return
        worker = self.worker
        if self.progress is not None:
            self.progress.reset()
            self.progress.deleteLater()
            self.progress = None
            self.reactivate()
        if worker is not None:
            word = "cancelled after" if worker.cancelled else "done:"
            self._status(f"Prediction {word} {worker.done} of {len(worker.jobs)} frames; predicted joints are "
                         "magenta until confirmed (Enter) or moved")

    def cancel_prediction(self, wait_ms: int = 10000) -> None:
        if self.worker is not None and self.worker.isRunning():
            self.worker.cancel()
            self.worker.wait(wait_ms)
