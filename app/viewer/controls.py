"""ControlsPanel: the Controls dock's form, a view of `ViewerSettings`.

Each widget writes its setting when the user changes it and follows the setting when anything else changes it
(a key, a loaded model, a script). Nothing here talks to the pipeline: that is `app.viewer.bindings`.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QLabel, QSlider, QSpinBox, QWidget

from app.viewer.settings import MAX_SUBJECTS, TRACKER_MODES, ViewerSettings
from cpm_core.detection import DETECTORS


def _log_slider(lo: float, hi: float) -> QSlider:
    """A slider over log10 values in [lo, hi] in tenths of a decade (noise levels span orders of magnitude)."""
    s = QSlider(Qt.Orientation.Horizontal)
    s.setRange(round(math.log10(lo) * 10), round(math.log10(hi) * 10))
    return s


def _set_quietly(widget, setter: str, value) -> None:
    """Show `value` without the widget's change signal (the setting already holds it)."""
    with QSignalBlocker(widget):
        getattr(widget, setter)(value)


class ControlsPanel(QWidget):
    """Threshold, smoothing, self-tracking, detection, heatmap colours and looping, bound to `settings`."""

    def __init__(self, settings: ViewerSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        form = QFormLayout(self)
        s = settings

        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(0, 100)
        self.threshold_label = QLabel()
        self.threshold_slider.valueChanged.connect(lambda v: setattr(s, "threshold", v / 100.0))
        form.addRow("Confidence threshold", self.threshold_slider)
        form.addRow("", self.threshold_label)
        s.subscribe("threshold", self._show_threshold, now=True)

        self.kalman_check = self._check(form, "Kalman smoothing (K)", "kalman")
        self.q_slider = _log_slider(1e-4, 1.0)
        self.r_slider = _log_slider(1e-2, 100.0)
        self.noise_label = QLabel()
        self.q_slider.valueChanged.connect(lambda v: setattr(s, "process_noise", 10 ** (v / 10)))
        self.r_slider.valueChanged.connect(lambda v: setattr(s, "measurement_noise", 10 ** (v / 10)))
        form.addRow("Process noise q", self.q_slider)
        form.addRow("Measurement noise r", self.r_slider)
        form.addRow("", self.noise_label)
        s.subscribe("process_noise", lambda _v: self._show_noise(), now=True)
        s.subscribe("measurement_noise", lambda _v: self._show_noise())

        self.tracking_check = self._check(form, "Self-tracking crop (T)", "tracking")
        self.tracker_threshold = QDoubleSpinBox()
        self.tracker_threshold.setRange(0.0, 50.0)
        self.tracker_threshold.setSingleStep(0.1)
        self.tracker_threshold.setToolTip("The track is lost when the sum of the joints' heatmap peaks falls below")
        self.tracker_threshold.valueChanged.connect(lambda v: setattr(s, "tracker_threshold", v))
        s.subscribe("tracker_threshold", lambda v: _set_quietly(self.tracker_threshold, "setValue", v), now=True)
        form.addRow("Lost below (sum of peaks)", self.tracker_threshold)
        self.tracker_mode = QComboBox()
        self.tracker_mode.addItems(TRACKER_MODES)
        self.tracker_mode.currentTextChanged.connect(lambda m: setattr(s, "tracker_mode", m))
        s.subscribe("tracker_mode", lambda m: _set_quietly(self.tracker_mode, "setCurrentText", m), now=True)
        form.addRow("Tracker view pose", self.tracker_mode)

        self._build_detection(form)

        self.autoscale_check = self._check(form, "Auto-scale heatmap colours", "autoscale")
        self.autoscale_check.setToolTip("Colour each heatmap tile over its own range instead of [0, 1]: shows the "
                                        "structure of weak or untrained models' outputs")
        self.loop_check = self._check(form, "Loop video (L)", "loop")

    def _check(self, form: QFormLayout, text: str, name: str) -> QCheckBox:
        box = QCheckBox(text)
        box.toggled.connect(lambda on: setattr(self.settings, name, on))
        self.settings.subscribe(name, lambda on: _set_quietly(box, "setChecked", on), now=True)
        form.addRow(box)
        return box

    def _build_detection(self, form: QFormLayout) -> None:
        """Detect subjects: a detector finds hands/people anywhere in the frame and each gets its own pose and
        id. The detector follows the model's skeleton unless overridden ('auto')."""
        s = self.settings
        self.detect_check = self._check(form, "Detect subjects (D)", "detect")
        self.detect_check.setToolTip("Find every subject anywhere in the frame with a detector, pose each one and "
                                     "keep their ids over time; click a subject to show its heatmaps")
        self.max_subjects_spin = QSpinBox()
        self.max_subjects_spin.setRange(1, MAX_SUBJECTS)
        self.max_subjects_spin.valueChanged.connect(lambda n: setattr(s, "max_subjects", n))
        s.subscribe("max_subjects", lambda n: _set_quietly(self.max_subjects_spin, "setValue", n), now=True)
        form.addRow("Max subjects", self.max_subjects_spin)
        self.detector_combo = QComboBox()
        self.detector_combo.addItem("auto", "")
        for name in DETECTORS:
            self.detector_combo.addItem(name, name)
        self.detector_combo.setToolTip("auto: palm for hand models, pose for body models")
        self.detector_combo.currentIndexChanged.connect(
            lambda i: setattr(s, "detector", self.detector_combo.itemData(i) or ""))
        s.subscribe("detector", lambda d: _set_quietly(self.detector_combo, "setCurrentIndex",
                                                        max(0, self.detector_combo.findData(d))), now=True)
        form.addRow("Detector", self.detector_combo)

    def show_auto_detector(self, name: str | None) -> None:
        """Say which detector 'auto' means for the loaded model (None: no model yet)."""
        self.detector_combo.setItemText(0, f"auto ({name or '–'})")

    def _show_threshold(self, t: float) -> None:
        self.threshold_label.setText(f"{t:.2f}")
        _set_quietly(self.threshold_slider, "setValue", round(t * 100))

    def _show_noise(self) -> None:
        q, r = self.settings.process_noise, self.settings.measurement_noise
        self.noise_label.setText(f"q = {q:.3g}, r = {r:.3g}")
        _set_quietly(self.q_slider, "setValue", round(math.log10(q) * 10))
        _set_quietly(self.r_slider, "setValue", round(math.log10(r) * 10))
