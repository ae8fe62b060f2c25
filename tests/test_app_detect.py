"""Subject detection in the live viewer: a real tiny CPM behind a stub detector with two fixed subjects, so the
drawing, ids, click-to-select, toggling and a missing detector are tested without any detector model."""

from __future__ import annotations

import numpy as np
from app_support import IMAGE
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt

from app.main import parse_args
from app.main_window import MainWindow
from cpm_core.detection import Detection, Detector, DetectorUnavailable
from cpm_core.preprocess import CropBox

WAIT_MS = 15000


class TwoSubjects:
    """A Detector: the same two subjects in every frame of the 200x133 fixture image, the right one turned
    like a hand the palm detector found sideways."""

    name = "stub"

    def __init__(self):
        self.calls = 0

    def detect(self, frame: np.ndarray) -> list[Detection]:
        self.calls += 1
        return [Detection((10.0, 20.0, 60.0, 60.0), 0.9, CropBox(40.0, 50.0, 70.0), None, "hand"),
                Detection((120.0, 30.0, 60.0, 60.0), 0.8, CropBox(150.0, 60.0, 70.0, 30.0), None, "hand")]


def _click_frame(qtbot, view, x: float, y: float) -> None:
    """A real mouse click on the view's widget at frame pixel (x, y)."""
    scene = view.panel.view.mapViewToScene(QPointF(x, y))
    pos = view.mapFromScene(scene)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(pos.x(), pos.y()))


def test_two_subjects_drawn_selected_by_click_and_detection_toggles_off(qtbot, window):
    assert isinstance(TwoSubjects(), Detector)
    window.pipeline.detector_factory = lambda name: TwoSubjects()
    assert window.binding.detector_name() == "palm"  # the tiny model has a hand skeleton
    window.set_view("single")
    window.viewer_settings.detect = True
    assert window.open_source(IMAGE)
    single = window.views["single"]
    qtbot.waitUntil(lambda: single.last is not None and single.last.detecting and len(single.last.subjects) == 2,
                    timeout=WAIT_MS)
    pose = single.last
    assert [s.id for s in pose.subjects] == [1, 2]
    assert set(single.panel.subjects.items) == {1, 2}
    assert not single.panel.overlay.item.isVisible()  # the single-subject skeleton gives way to the subjects
    pens = {g.box.opts["pen"].color().name() for g in single.panel.subjects.items.values()}
    assert len(pens) == 2  # one colour per id
    assert pose.subjects[1].crop.angle == 30.0
    window.update_readout()
    assert "subjects 2" in window.readout.text()

    second = pose.subject(2)
    assert pose.subject_at(*second.crop.corners().mean(axis=0)) == 2
    assert pose.subject_at(0.0, 130.0) is None
    qtbot.waitExposed(single)
    _click_frame(qtbot, single, second.crop.cx, second.crop.cy)
    assert window.viewer_settings.selected_subject == 2
    assert single.panel.subjects.items[2].box.opts["pen"].widthF() > single.panel.subjects.items[1].box.opts[
        "pen"].widthF()

    window.set_view("multi")
    multi = window.views["multi"]
    assert multi.selected_subject == 2
    shown = multi.cells[0].values
    np.testing.assert_allclose(shown, second.stage_max[0])
    assert not np.allclose(shown, pose.subject(1).stage_max[0])  # a different crop, different heatmaps
    assert multi.cells[0].title.startswith("#2 ")
    window.set_view("joints")
    joints = window.views["joints"]
    np.testing.assert_allclose(joints.cells[0].values, second.result.heatmaps[-1][..., 0])

    window.select_subject_at(40.0, 50.0)  # inside the first box
    assert window.viewer_settings.selected_subject == 1
    window.set_view("tracker")
    assert set(window.views["tracker"].panel.subjects.items) == {1, 2}
    assert "2 subjects" in window.views["tracker"].status.textItem.toPlainText()

    window.set_view("single")
    window.viewer_settings.detect = False
    qtbot.waitUntil(lambda: single.last is not None and not single.last.detecting, timeout=WAIT_MS)
    assert not single.panel.subjects.items and single.panel.overlay.item.isVisible()
    window.update_readout()
    assert "subjects" not in window.readout.text()


def test_unavailable_detector_leaves_app_running_with_message(qtbot, window):
    def unavailable(name: str):
        raise DetectorUnavailable(f"{name} model not found here")

    window.pipeline.detector_factory = unavailable
    window.viewer_settings.detect = True
    assert window.open_source(IMAGE)
    qtbot.waitUntil(lambda: not window.viewer_settings.detect, timeout=WAIT_MS)
    assert "palm model not found here" in window.last_error and "detection is off" in window.last_error
    qtbot.waitUntil(lambda: window.displayed >= 1, timeout=WAIT_MS)
    assert not window.views["multi"].last.detecting  # single-subject mode goes on


def test_detector_override_persists_and_cli_flags(qtbot, tmp_path, estimator):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    w = MainWindow(estimator, settings=settings, quiet=True)
    qtbot.addWidget(w)
    w.controls.detector_combo.setCurrentIndex(w.controls.detector_combo.findData("hog"))  # the real widgets
    w.controls.max_subjects_spin.setValue(7)
    assert w.binding.detector_name() == "hog" and w.viewer_settings.detector == "hog"
    w.close()
    w2 = MainWindow(estimator, settings=settings, quiet=True)
    qtbot.addWidget(w2)
    assert w2.binding.detector_name() == "hog" and w2.viewer_settings.max_subjects == 7
    assert w2.controls.max_subjects_spin.value() == 7
    w2.close()
    args = parse_args(["--detect", "--detector", "palm", "--screenshot", "x.png"])
    assert args.detect and args.detector == "palm"
