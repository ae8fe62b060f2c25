"""ViewerSettings (app/viewer/settings.py): Qt-free state with change notifications, and the real window's widgets,
views, pipeline and recorder following it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.viewer.settings import PROCESS_NOISE, ViewerSettings

ROOT = Path(__file__).resolve().parents[1]


def test_the_settings_module_imports_and_works_with_qt_blocked():
    """No PySide6 (or pyqtgraph) import in the state module: it loads and notifies with Qt made unimportable."""
    code = ("import sys\n"
            "sys.modules['PySide6'] = None; sys.modules['pyqtgraph'] = None\n"
            "from app.viewer.settings import ViewerSettings\n"
            "s = ViewerSettings(); seen = []\n"
            "s.subscribe('threshold', seen.append); s.threshold = 0.5\n"
            "assert seen == [0.5]\n"
            "assert not any(m.startswith(('PySide6', 'pyqtgraph')) and sys.modules[m] is not None\n"
            "               for m in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_a_change_notifies_its_subscribers_once_and_an_equal_value_no_one():
    s = ViewerSettings()
    seen, everything = [], []
    unsubscribe = s.subscribe("kalman", seen.append)
    s.subscribe("*", everything.append)
    s.kalman = False
    s.kalman = False  # unchanged: silent (a widget writing back what it was told ends the round trip)
    s.threshold = 0.3
    assert seen == [False]
    assert everything == [("kalman", False), ("threshold", 0.3)]
    unsubscribe()
    s.kalman = True
    assert seen == [False]
    now = []
    s.subscribe("view", now.append, now=True)
    assert now == ["multi"]


def test_values_are_checked_and_normalised():
    s = ViewerSettings()
    with pytest.raises(ValueError):
        s.threshold = 1.5
    with pytest.raises(ValueError):
        s.view = "nonsense"
    with pytest.raises(ValueError):
        s.process_noise = 0.0
    with pytest.raises(AttributeError):
        s.colour = "red"  # a typo is an error, not a new attribute
    s.max_subjects = 99
    assert s.max_subjects == 10
    s.detector = None
    assert s.detector == ""
    s.update(tracking=True, selected_subject=2)
    assert s.as_dict()["tracking"] and s.selected_subject == 2
    assert ViewerSettings().process_noise == PROCESS_NOISE


def test_widgets_views_pipeline_and_keys_follow_the_settings(qtbot, window):
    """Setting a field moves its widget and reaches the views and the pipeline; a key or a widget sets the field."""
    from PySide6.QtCore import Qt

    s, c = window.viewer_settings, window.controls
    s.threshold = 0.42
    assert c.threshold_slider.value() == 42 and c.threshold_label.text() == "0.42"
    assert all(v.threshold == 0.42 for v in window.views.values())
    c.threshold_slider.setValue(25)  # the widget writes the setting
    assert s.threshold == 0.25
    s.autoscale = True
    assert c.autoscale_check.isChecked() and all(v.autoscale for v in window.views.values())
    s.kalman = False
    assert not c.kalman_check.isChecked() and not window.pipeline.kalman
    qtbot.keyClick(window, Qt.Key.Key_K)  # the window's key toggles the setting; the check box follows
    assert s.kalman and c.kalman_check.isChecked()
    c.q_slider.setValue(-20)
    assert s.process_noise == pytest.approx(0.01) and "q = 0.01" in c.noise_label.text()
    s.tracker_mode = "both"
    assert window.views["tracker"].mode == "both" and c.tracker_mode.currentText() == "both"
    s.view = "joints"
    assert window.current_view is window.views["joints"] and window.view_actions["joints"].isChecked()
    s.realtime = False
    assert window.realtime_action.isChecked()


def test_the_recorder_follows_the_threshold_setting_not_a_slider(qtbot, window, tmp_path):
    s = window.viewer_settings
    s.threshold = 0.3
    assert window.start_recording(tmp_path / "r.mp4")
    rec = window.recording.recorder
    assert rec.threshold == 0.3
    s.threshold = 0.6
    assert rec.threshold == 0.6
    window.stop_recording()
    s.threshold = 0.1
    assert rec.threshold == 0.6  # a finished recording no longer listens
