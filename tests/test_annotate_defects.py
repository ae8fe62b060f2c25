"""Annotate-tab defects found in a real window (issue #21 items 10-14), each checked on the real widgets:
keys that died when focus left the tab's widgets, buttons greyed out on a new project, predictions without
their confidence, F1 help without the tab's keys, and messages cut off in the status bar."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from app_support import FOLDER, tiny_estimator
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication, QDialog, QLabel, QLineEdit, QMainWindow, QPushButton, QTabWidget

from app.annotate.canvas import JOINT_RADIUS_PX, predicted_style
from app.annotate.workspace import AnnotationWorkspace
from app.shortcuts import help_html

WAIT_MS = 30000


@pytest.fixture(scope="module")
def estimator():
    return tiny_estimator()


@pytest.fixture
def images(tmp_path):
    shutil.copytree(FOLDER, tmp_path / "imgs")
    return tmp_path / "imgs"


@pytest.fixture
def ws(qtbot, tmp_path, images, estimator):
    w = AnnotationWorkspace(lambda: estimator)
    qtbot.addWidget(w)
    w.resize(1100, 700)
    w.show()
    qtbot.waitExposed(w)
    assert w.new_from_folder(images, tmp_path / "hands.cpmproj.json"), w.last_error
    yield w
    w.cancel_prediction()


@pytest.fixture
def host(qtbot, estimator):
    """The tab as the app hosts it: Viewer | Annotate | Train tabs in a main window with a status bar and a speed
    readout (built here, so these checks do not depend on how the main window is composed)."""
    w = QMainWindow()
    tabs = QTabWidget()
    viewer = QPushButton("a viewer widget that takes focus")
    ann = AnnotationWorkspace(lambda: estimator)
    train = QLineEdit("a Train tab field")
    tabs.addTab(viewer, "Viewer")
    tabs.addTab(ann, "Annotate")
    tabs.addTab(train, "Train")
    tabs.setCurrentWidget(ann)
    w.setCentralWidget(tabs)
    readout = QLabel("capture 29.9 fps | inference 12.3 ms | display 29.9 fps | dropped 0")
    w.statusBar().addPermanentWidget(readout)
    ann.statusMessage.connect(lambda m: w.statusBar().showMessage(m))
    w.tabs, w.annotate, w.train = tabs, ann, train
    qtbot.addWidget(w)
    w.resize(1100, 700)
    w.show()
    qtbot.waitExposed(w)
    yield w
    ann.cancel_prediction()


def _activate(qtbot, w) -> None:
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5000)


def _key(qtbot, window, key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    """A key press where a user's would go: to the focused widget, or the window when nothing has focus."""
    qtbot.keyClick(QApplication.focusWidget() or window, key, modifier)


def _predict_all(qtbot, ws) -> dict[int, np.ndarray]:
    """Predict every frame with the real tiny model (no dialog); returns what the worker sent per frame."""
    got: dict[int, np.ndarray] = {}
    worker = ws.predict_unlabelled(dialog=False)
    assert worker is not None, ws.last_error
    worker.framePredicted.connect(lambda i, kp: got.__setitem__(i, np.asarray(kp)))
    qtbot.waitUntil(lambda: worker.isFinished() and len(ws.confidence) == len(ws.project), timeout=WAIT_MS)
    return {i: ws.confidence[i] for i in range(len(ws.project))}


# ---------------------------------------------------------------------------------------------- item 10
def test_keys_work_whatever_has_focus_in_the_main_window(host, qtbot, tmp_path, images):
    """N, PgDn, Return, P, Shift+P work after a project is made from a folder with focus outside the tab's widgets
    (where a closed file dialog leaves it), after clicking 'Predict frame (P)', and after Shift+P's progress
    dialog; and they do nothing on another tab."""
    w = host
    _activate(qtbot, w)
    w.tabs.tabBar().setFocus()  # focus outside the Annotate tab's widgets
    ann = w.annotate
    # the folder and file dialogs come and go; without a window manager to re-activate it, the window is left
    # inactive (so under Xvfb no key reached the tab until a click on the canvas)
    dialog = QDialog(w)
    dialog.show()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is dialog, timeout=5000)
    dialog.close()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is None, timeout=5000)
    assert ann.new_from_folder(images, tmp_path / "p.cpmproj.json"), ann.last_error
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5000)
    focus = QApplication.focusWidget()
    assert focus is None or not ann.isAncestorOf(focus)  # the situation the user was in
    _key(qtbot, w, Qt.Key.Key_PageDown)
    assert ann.index == 1
    _key(qtbot, w, Qt.Key.Key_Return)  # confirm frame 2 (empty: no hand)
    assert ann.project.is_labelled(1)
    _key(qtbot, w, Qt.Key.Key_N)
    assert ann.index == 2  # the next unlabelled after frame 2
    # the Predict button (takes no focus) and then the P key, with nothing focused in the window at all
    QApplication.focusWidget() and QApplication.focusWidget().clearFocus()
    qtbot.mouseClick(ann.panel.predict_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ann.worker is not None and ann.worker.isFinished(), timeout=WAIT_MS)
    assert ann.project.state(2).predicted.any()
    _key(qtbot, w, Qt.Key.Key_PageUp)
    assert ann.index == 1
    _key(qtbot, w, Qt.Key.Key_P)
    qtbot.waitUntil(lambda: ann.worker.isFinished() and ann.project.state(1).predicted.any(), timeout=WAIT_MS)
    # Shift+P opens a modal progress dialog; the keys still work once it has closed
    _key(qtbot, w, Qt.Key.Key_P, Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: ann.worker.isFinished() and ann.progress is None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5000)
    assert all(ann.project.state(i).predicted.any() for i in range(len(ann.project)) if i != 1)
    _key(qtbot, w, Qt.Key.Key_PageDown)
    assert ann.index == 2
    _key(qtbot, w, Qt.Key.Key_Return)
    assert ann.project.is_labelled(2)
    # on another tab the Annotate keys are off
    w.tabs.setCurrentWidget(w.train)
    w.train.setFocus()
    _key(qtbot, w, Qt.Key.Key_PageDown)
    _key(qtbot, w, Qt.Key.Key_N)
    assert ann.index == 2 and w.train.text().endswith("n")  # typed into the field, not a frame step


# ---------------------------------------------------------------------------------------------- item 11
def test_buttons_enabled_on_a_new_project(qtbot, tmp_path, images, estimator):
    w = AnnotationWorkspace(lambda: estimator)
    qtbot.addWidget(w)
    p = w.panel
    actions = (p.predict_button, p.predict_all_button, p.confirm_button, p.next_button, p.least_button,
               p.export_button, p.suggest_button, p.check_button)
    assert not any(b.isEnabled() for b in actions)  # nothing to act on yet
    assert w.new_from_folder(images, tmp_path / "n.cpmproj.json"), w.last_error
    assert all(b.isEnabled() for b in actions), [b.text() for b in actions if not b.isEnabled()]
    assert not p.undo_button.isEnabled() and not p.redo_button.isEnabled()  # nothing done yet


# ---------------------------------------------------------------------------------------------- item 12
def test_predicted_joints_show_their_confidence(qtbot, ws):
    conf = _predict_all(qtbot, ws)
    frame0 = conf[0]
    assert frame0.shape == (ws.project.num_joints,) and ((0 <= frame0) & (frame0 <= 1)).all()
    ws.go_to(0, force=True)
    item = ws.canvas.overlay
    st = ws.project.state(0)
    j_low, j_high = int(np.argmin(frame0)), int(np.argmax(frame0))
    assert st.predicted[j_low] and item.joint_confidence(j_low) == pytest.approx(frame0[j_low])
    # size and opacity grow with confidence
    assert predicted_style(0.0)[0] < predicted_style(0.5)[0] < predicted_style(1.0)[0]
    assert predicted_style(0.0)[1] < predicted_style(0.5)[1] < predicted_style(1.0)[1] == 255
    if frame0[j_low] < frame0[j_high]:
        assert item.joint_style(j_low) < item.joint_style(j_high)
    # the joint list shows the number too
    assert f"{frame0[j_low]:.2f}" in ws.panel.joints.item(j_low).text()
    # hovering a predicted joint tells its confidence
    hit_j = ws.canvas.hit_test(*st.keypoints[j_low])[1]  # the joint the canvas finds there (joints may overlap)
    pos = ws.canvas.widget_pos(*st.keypoints[j_low])
    move = QMouseEvent(QMouseEvent.Type.MouseMove, QPointF(pos), QPointF(ws.canvas.viewport().mapToGlobal(pos)),
                       Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(ws.canvas.viewport(), move)
    assert ws.canvas.hover.endswith(f"confidence {frame0[hit_j]:.2f}")
    assert ws.canvas.viewport().toolTip() == ws.canvas.hover
    # a joint a person moves is no longer a prediction: plain dot, no number
    ws.canvas.setFocus()
    ws._on_joint_dragged(hit_j, 30.0, 30.0, True)
    assert item.joint_confidence(hit_j) is None and item.joint_style(hit_j) == (JOINT_RADIUS_PX, 255)


def test_least_confident_walks_frames_from_the_least_sure(qtbot, ws):
    conf = _predict_all(qtbot, ws)
    means = {i: float(np.mean(c)) for i, c in conf.items()}
    ws.confirm() if ws.index != min(means, key=means.get) else None  # a confirmed frame leaves the walk
    confirmed = ws.index if ws.project.is_labelled(ws.index) else None
    expected = sorted((m, i) for i, m in means.items() if i != confirmed)
    ws.canvas.setFocus()
    visited = []
    for _ in expected:
        qtbot.keyClick(ws.canvas, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)
        visited.append(ws.index)
    assert visited == [i for _, i in expected]
    assert "mean confidence" in ws.last_message
    assert f"({ws.frame_confidence(visited[0]):.2f})" in ws.panel.frames.item(visited[0]).text()
    ws.panel.least_button.click()  # wraps around to the least sure again
    assert ws.index == visited[0]


# ---------------------------------------------------------------------------------------------- item 13
def test_shortcut_help_lists_the_annotate_keys(host):
    rows = host.annotate.shortcut_list()
    keys = {k for k, _ in rows}
    for expected in ("N", "Shift+N", "PgDown", "PgUp", "Return / Enter", "P", "Shift+P", "V", "B", "F",
                     "Del / Backspace", "Ctrl+Z", "Ctrl+Shift+Z / Ctrl+Y"):
        assert expected in keys, (expected, keys)
    assert ("N", "Next unlabelled frame") in rows and ("Ctrl+Z", "Undo") in rows
    # every key the tab reacts to is listed: the rows are read from its actions
    live = {a.shortcut().toString() for a in host.annotate.actions() if not a.shortcut().isEmpty()}
    assert live <= {k.split(" / ")[0] for k in keys}
    viewer_rows = [("K", "Toggle Kalman smoothing"), ("Space", "Play/Pause")]  # as MainWindow.shortcut_list gives
    html = help_html([("Viewer", viewer_rows), ("Annotate tab", rows)])
    assert "<h4>Viewer</h4>" in html and "<h4>Annotate tab</h4>" in html
    assert "Next unlabelled frame" in html and "Toggle Kalman smoothing" in html
    # the tab's own help line names Shift+N and points to F1
    assert "Shift+N" in host.annotate.panel.help.text() and "F1" in host.annotate.panel.help.text()


# ---------------------------------------------------------------------------------------------- item 14
def test_messages_are_shown_whole_in_the_tab(host, qtbot, tmp_path, images):
    w = host
    ann = w.annotate
    assert ann.new_from_folder(images, tmp_path / "m.cpmproj.json"), ann.last_error
    qtbot.waitUntil(lambda: ann.panel.message.isVisible(), timeout=5000)
    long = ("Prediction done: 3 of 3 frames; predicted joints are magenta until confirmed (Enter) or moved, "
            "the least confident first with Shift+N")
    ann._status(long)
    label = ann.panel.message
    assert label.text() == long and label.wordWrap()
    # the whole text fits the label's width (wrapped), inside the panel, whatever the speed readout takes
    assert label.width() <= ann.panel.width()
    assert label.heightForWidth(label.width()) <= label.height() or label.sizeHint().width() <= label.width()
    ann._error("no model loaded: load one from the Model menu to predict joints")
    assert label.text().startswith("no model loaded") and "e05050" in label.styleSheet()
