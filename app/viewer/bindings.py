"""PipelineBinding: `ViewerSettings` -> the live pipeline, and the detection settings <-> QSettings.

The pipeline knows nothing of the viewer's settings (it also runs in `cpm infer` and the bench); this is the one
place that turns a changed field into a pipeline call. The detector choice and the maximum number of subjects
persist between runs; 'auto' resolves to the detector that suits the loaded model's skeleton."""

from __future__ import annotations

from PySide6.QtCore import QSettings

from app.viewer.settings import ViewerSettings
from cpm_core.detection import default_detector_name
from cpm_core.live_pipeline import LivePipeline


class PipelineBinding:
    """Subscribes the pipeline to the settings it uses; `refresh_detection` after a new model ('auto' may mean
    another detector now)."""

    def __init__(self, settings: ViewerSettings, pipeline: LivePipeline, store: QSettings):
        self.settings, self.pipeline, self.store = settings, pipeline, store
        settings.max_subjects = int(store.value("detection/max_subjects", settings.max_subjects))
        settings.detector = str(store.value("detection/detector", "") or "")
        settings.subscribe("kalman", pipeline.set_kalman, now=True)
        for name in ("process_noise", "measurement_noise"):
            settings.subscribe(name, lambda _v: self._apply_noise())
        self._apply_noise()
        settings.subscribe("tracking", pipeline.set_tracking, now=True)
        settings.subscribe("tracker_threshold", pipeline.set_tracker_threshold, now=True)
        for name in ("detect", "detector", "max_subjects"):
            settings.subscribe(name, lambda _v: self.refresh_detection())
        self.refresh_detection()

    def _apply_noise(self) -> None:
        self.pipeline.set_kalman_noise(self.settings.process_noise, self.settings.measurement_noise)

    def detector_name(self) -> str:
        """The override if one is chosen, else the detector that suits the loaded model's skeleton."""
        if self.settings.detector:
            return self.settings.detector
        estimator = self.pipeline.estimator
        return default_detector_name(estimator.card.skeleton.name) if estimator is not None else "palm"

    def refresh_detection(self) -> None:
        s = self.settings
        self.store.setValue("detection/max_subjects", s.max_subjects)
        self.store.setValue("detection/detector", s.detector)
        self.pipeline.set_detection(s.detect, self.detector_name(), s.max_subjects)
