"""Loading models and showing what is loaded: the Model menu's dialogs, the model card dock, the status bar badge.

Weights load in the pipeline's thread (building and warming a model takes a moment); the current model keeps
running until the new one is ready, and a model that cannot load leaves it in place with a message. A newly
shown model sets the viewer settings that suit it (an untrained placeholder: threshold 0 and auto-scaled heatmaps,
or its meaningless pose and heatmap structure would not show; hands smoothed, bodies not, as in the port).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QLabel, QVBoxLayout, QWidget

from app.viewer.settings import ViewerSettings
from cpm_core.estimator import PoseEstimator
from cpm_core.live_pipeline import LivePipeline
from cpm_core.weights import WeightsError, sniff_format

MODEL_FILTER = "Models (card.json *.pkl *.pickle *.index *.weights.h5);;All files (*)"
UNTRAINED_STYLE = "color: white; background: #b00020; font-weight: bold;"


class ModelLoader(QObject):
    """Requests models from the pipeline and shows the loaded one (`card` widget, `badge` label)."""

    modelShown = Signal(object)  # the PoseEstimator now shown

    def __init__(self, settings: ViewerSettings, pipeline: LivePipeline, report_error: Callable[[str, bool], None],
                 status: Callable[..., None], parent: QWidget | None = None):
        super().__init__(parent)
        self.settings, self.pipeline = settings, pipeline
        self._report, self._status, self._parent = report_error, status, parent
        self._interactive = False
        self._requested: str | None = None
        self.model_path: str | None = None  # where the shown model was loaded from (None: given, not loaded)
        self.card = QWidget()
        lay = QVBoxLayout(self.card)
        self.card_warning = QLabel()
        self.card_warning.setWordWrap(True)
        self.card_warning.setStyleSheet("color: white; background: #b00020; padding: 4px; font-weight: bold;")
        self.card_label = QLabel()
        self.card_label.setWordWrap(True)
        self.card_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.card_warning)
        lay.addWidget(self.card_label)
        lay.addStretch(1)
        self.badge = QLabel()

    def load(self, path: str | Path, interactive: bool = False) -> bool:
        """Start loading weights in the pipeline's thread; False (with a message) when `path` is not weights."""
        try:
            sniff_format(path)
        except WeightsError as exc:
            self._report(str(exc), interactive)
            return False
        self._interactive = interactive
        self._status(f"Loading model {path} …")
        self._requested = str(path)
        self.pipeline.request_model(path)
        return True

    def dialog(self, folder: bool) -> None:
        if folder:
            path = QFileDialog.getExistingDirectory(self._parent, "Load model folder")
        else:
            path, _ = QFileDialog.getOpenFileName(self._parent, "Load model", "", MODEL_FILTER)
        if path:
            self.load(path, interactive=True)

    def failed(self, message: str) -> None:
        self._requested = None
        self._report(f"cannot load model: {message} (keeping the current model)", self._interactive)

    def show_model(self, estimator: PoseEstimator) -> None:
        """Show `estimator`'s card and badge and set the settings that suit it."""
        card = estimator.card
        self.card_label.setText(f"{card.summary()}\nruns on: {estimator.runtime_description}")
        self.card_warning.setVisible(not card.trained)
        self.card_warning.setText("UNTRAINED MODEL: random weights, the poses shown are meaningless until a "
                                  "trained model is loaded (Model menu)")
        if card.trained:
            self.badge.setText(f" model: {card.name} ")
            self.badge.setStyleSheet("")
        else:
            self.badge.setText(f" UNTRAINED MODEL: {card.name} ")
            self.badge.setStyleSheet(UNTRAINED_STYLE)
        self.settings.update(threshold=0.1 if card.trained else 0.0, autoscale=not card.trained,
                             kalman=card.skeleton.name.startswith("hand"))  # the port smooths hands, not bodies
        self._status(f"Model: {card.name}", 5000)
        if self._requested is not None:  # the answer to a load request (others: the window's first model)
            self.model_path, self._requested = self._requested, None
        self.modelShown.emit(estimator)
