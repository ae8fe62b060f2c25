"""The annotation tab end to end, offscreen: clicks and drags on the real canvas, undo/redo, autosave that
survives an unclean exit, model-assisted labelling with a tiny real CPM, export from the GUI, and the tab
inside the main window."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from app_support import FOLDER, SlowEstimator, tiny_estimator
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QPushButton

from app.annotate.workspace import AnnotationWorkspace
from cpm_core.dataset.formats import read_dataset
from cpm_core.dataset.project import AnnotationProject, ProjectFrame

WAIT_MS = 20000


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
    QApplication.processEvents()
    yield w
    w.cancel_prediction()


def _click(qtbot, w: AnnotationWorkspace, x: float, y: float, button=Qt.MouseButton.LeftButton) -> None:
    qtbot.mouseClick(w.canvas.viewport(), button, pos=w.canvas.widget_pos(x, y))


def _mouse(w: AnnotationWorkspace, kind, pos: QPoint, buttons) -> None:
    ev = QMouseEvent(kind, QPointF(pos), QPointF(w.canvas.viewport().mapToGlobal(pos)), Qt.MouseButton.LeftButton,
                     buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(w.canvas.viewport(), ev)


def _drag(w: AnnotationWorkspace, start: tuple[float, float], end: tuple[float, float], steps: int = 5) -> None:
    a, b = w.canvas.widget_pos(*start), w.canvas.widget_pos(*end)
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    _mouse(w, QMouseEvent.Type.MouseButtonPress, a, left)
    for k in range(1, steps + 1):
        # pyqtgraph drops move events closer than 10 ms (mouseRateLimit = 100/s); a real hand never is
        QTest.qWait(12)
        t = k / steps
        _mouse(w, QMouseEvent.Type.MouseMove, QPoint(round(a.x() + t * (b.x() - a.x())),
                                                      round(a.y() + t * (b.y() - a.y()))), left)
    _mouse(w, QMouseEvent.Type.MouseButtonRelease, b, none)
    QApplication.processEvents()


def _on_disk(w: AnnotationWorkspace) -> AnnotationProject:
    """A fresh project object from the autosaved file, as after a crash (the workspace is never closed)."""
    return AnnotationProject.load(w.project.path)


def test_label_with_clicks_and_drags_undo_redo_autosaved(qtbot, ws):
    p = ws.project
    # clicks place joints in skeleton order and auto-advance
    spots = [(40.0, 50.0), (60.0, 40.0), (80.0, 30.0)]
    for x, y in spots:
        _click(qtbot, ws, x, y)
    st = p.state(0)
    assert list(np.flatnonzero(st.placed)) == [0, 1, 2] and ws.selected == 3
    np.testing.assert_allclose(st.keypoints[:3], spots, atol=1.0)
    assert st.labelled and st.bbox_auto
    assert ws.panel.joints.item(0).text().startswith("✓")
    # a drag moves a joint: one undo command however many mouse moves
    n = ws.undo_stack.count()
    _drag(ws, spots[1], (70.0, 70.0), steps=6)
    assert ws.undo_stack.count() == n + 1
    np.testing.assert_allclose(p.state(0).keypoints[1], (70, 70), atol=1.0)
    # the box follows the joints; dragging its bottom-right corner makes it a person's box
    x, y, bw, bh = p.state(0).bbox
    _drag(ws, (x + bw, y + bh), (120.0, 95.0))
    bx = p.state(0).bbox
    assert not p.state(0).bbox_auto and bx[0] == pytest.approx(x) and bx[0] + bx[2] == pytest.approx(120, abs=1)
    # right click cycles visibility, V too, Delete removes; keys go through the tab's shortcuts
    _click(qtbot, ws, *spots[0], button=Qt.MouseButton.RightButton)
    assert p.state(0).visibility[0] == 1
    ws.canvas.setFocus()
    qtbot.keyClick(ws.canvas, Qt.Key.Key_V)  # joint 0 is selected: occluded -> absent
    assert p.state(0).visibility[0] == 0
    qtbot.keyClick(ws.canvas, Qt.Key.Key_V)  # back to visible at its old place
    assert p.state(0).visibility[0] == 2
    _click(qtbot, ws, *spots[2])  # select joint 2
    assert ws.selected == 2
    qtbot.keyClick(ws.canvas, Qt.Key.Key_Delete)
    assert p.state(0).visibility[2] == 0
    final = p.state(0)
    disk = _on_disk(ws)
    assert disk.state(0).same_as(final)
    # undo everything, step by step, then redo it all: the file follows every step
    count = ws.undo_stack.count()
    for _ in range(count - 1):
        qtbot.keyClick(ws.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert list(np.flatnonzero(p.state(0).placed)) == [0]
    ws.undo_stack.undo()
    assert not p.state(0).placed.any() and not _on_disk(ws).state(0).placed.any()
    for k in range(count):
        if k % 2:
            qtbot.keyClick(ws.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier
                           | Qt.KeyboardModifier.ShiftModifier)
        else:
            qtbot.keyClick(ws.canvas, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert p.state(0).same_as(final)
    # every edit is in the autosaved file, read by a new project object without any clean shutdown
    assert _on_disk(ws).state(0).same_as(final)
    # frame navigation and next-unlabelled
    qtbot.keyClick(ws.canvas, Qt.Key.Key_PageDown)
    assert ws.index == 1
    qtbot.keyClick(ws.canvas, Qt.Key.Key_PageUp)
    assert ws.index == 0
    qtbot.keyClick(ws.canvas, Qt.Key.Key_N)
    assert ws.index == 1


def test_predict_marks_joints_and_confirm_or_move_clears(qtbot, ws):
    p = ws.project
    _click(qtbot, ws, 30.0, 30.0)  # a person's joint 0, which the model must not overwrite
    worker = ws.predict_current()
    assert worker is not None
    qtbot.waitUntil(lambda: worker.isFinished() and p.state(0).predicted.any(), timeout=WAIT_MS)
    st = p.state(0)
    assert st.placed.all() and not st.predicted[0] and st.predicted[1:].all() and not st.labelled
    np.testing.assert_allclose(st.keypoints[0], (30, 30), atol=1.0)
    assert ws.panel.joints.item(5).text().startswith("?")
    assert _on_disk(ws).state(0).predicted[1:].all()
    # moving a predicted joint makes it a person's
    _drag(ws, tuple(st.keypoints[20]), (150.0, 100.0))
    assert not p.state(0).predicted[20] and p.state(0).predicted[1:20].all()
    qtbot.keyClick(ws.canvas, Qt.Key.Key_Return)
    assert not p.state(0).predicted.any() and p.state(0).labelled
    ws.undo_stack.undo()
    assert p.state(0).predicted[1:20].all()
    ws.undo_stack.redo()
    # all unlabelled frames, with a cancellable progress dialog
    worker = ws.predict_unlabelled(dialog=True)
    assert worker is not None and ws.progress is not None and [i for i, _ in worker.jobs] == [1, 2]
    qtbot.waitUntil(lambda: worker.isFinished() and ws.progress is None, timeout=WAIT_MS)
    assert p.state(1).predicted.all() and p.state(2).predicted.all()
    assert ws.index == 0  # a background prediction does not move the user
    assert "done: 2 of 2" in ws.last_message


def test_cancel_prediction_keeps_finished_frames(qtbot, ws, estimator):
    ws.project.frames = [ProjectFrame(f.image, f.width, f.height) for f in ws.project.frames * 20]
    ws.set_project(ws.project)
    ws.estimator_provider = lambda: SlowEstimator(estimator, 0.05)
    worker = ws.predict_unlabelled(dialog=True)
    qtbot.waitUntil(lambda: worker.done >= 1, timeout=WAIT_MS)
    ws.progress.findChild(QPushButton).click()  # the dialog's Cancel button
    qtbot.waitUntil(worker.isFinished, timeout=WAIT_MS)
    QApplication.processEvents()
    done = sum(ws.project.state(i).predicted.any() for i in range(len(ws.project)))
    assert 1 <= done < 60 and worker.cancelled


def test_export_from_gui_round_trips_and_fails_clearly(qtbot, ws, tmp_path):
    p = ws.project
    assert not ws.export(tmp_path / "none.json", "coco") and "no frame is labelled" in ws.last_error
    for i in range(2):
        ws.go_to(i)
        for k in range(21):
            _click(qtbot, ws, 10.0 + 6 * k, 15.0 + 4 * (k % 5) + i)
    ws.go_to(0)
    ws.select_joint(4)
    qtbot.keyClick(ws.canvas, Qt.Key.Key_V)  # occluded
    assert ws.export(tmp_path / "out" / "hands.json", "coco"), ws.last_error
    assert "Exported 2 labelled frames" in ws.last_message and "1 unlabelled" in ws.last_message
    ds = read_dataset(tmp_path / "out" / "hands.json")
    assert ds.num_images == 2
    for s, i in zip(ds.samples, range(2)):
        np.testing.assert_allclose(s.instances[0].keypoints, p.state(i).keypoints, atol=0.01)
        assert (s.instances[0].visibility == p.state(i).visibility).all()
        assert s.instances[0].bbox == pytest.approx(p.state(i).bbox, abs=0.01)
    assert ws.export(tmp_path / "labels", "labels"), ws.last_error
    lab = read_dataset(tmp_path / "labels", "labels")
    assert lab.num_images == 2
    got = sorted(lab.samples, key=lambda s: s.image)
    np.testing.assert_allclose(got[0].instances[0].keypoints, p.state(0).keypoints, atol=0.01)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert not ws.export(blocker / "sub" / "x.json", "coco")
    assert ws.last_error.startswith("export to coco failed:")


def test_annotate_tab_in_main_window(qtbot, tmp_path, images, estimator):
    from app.main_window import MainWindow

    w = MainWindow(estimator, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat), quiet=True)
    qtbot.addWidget(w)
    w.show()
    try:
        assert w.annotate.new_from_folder(images, tmp_path / "x.cpmproj.json")
        assert w.mode_tabs.currentWidget() is w.annotate
        assert not w.controls_dock.isVisible() and not w.plots_dock.isVisible()  # room for the canvas
        texts = [a.text() for a in w.menuBar().actions()[0].menu().actions()]
        assert any("annotation project" in t for t in texts) and any("Export dataset" in t for t in texts)
        w.annotate.worker = None
        assert w.annotate.predict_current() is not None
        qtbot.waitUntil(lambda: w.annotate.project.state(0).predicted.any(), timeout=WAIT_MS)
        w.mode_tabs.setCurrentIndex(0)
        assert w.controls_dock.isVisible() and w.plots_dock.isVisible()
        assert not w.open_source(tmp_path / "missing.mp4")  # the viewer still works beside it
        qtbot.keyClick(w, Qt.Key.Key_2)  # the viewer's keys still switch views
        assert w.view_name == "single"
    finally:
        w.close()
    assert not w.worker.isRunning()
