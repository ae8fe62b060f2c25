"""The labelling loop in the Annotate tab, offscreen: "Suggest frames" scores a real video with a real (tiny) CPM
off the GUI thread and adds the picks to the open project; "Check labels" lists the flags of a project imported
from a dataset with corrupted labels, and a click on a flag shows its frame and joint."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from app_support import FOLDER, VIDEO, tiny_estimator
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from app.annotate.workspace import AnnotationWorkspace
from cpm_core.dataset.formats import read_dataset, write_dataset
from cpm_core.dataset.project import AnnotationProject

WAIT_MS = 60000
TINY_COCO = Path(__file__).parent / "fixtures" / "dataset" / "tiny_coco" / "tiny.json"
THUMB, LITTLE = [1, 2, 3, 4], [17, 18, 19, 20]


@pytest.fixture(scope="module")
def estimator():
    return tiny_estimator()


@pytest.fixture
def ws(qtbot, estimator):
    w = AnnotationWorkspace(lambda: estimator)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown()


def _click_row(qtbot, lst, row: int) -> None:
    rect = lst.visualItemRect(lst.item(row))
    qtbot.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_suggest_frames_adds_the_picks_of_a_video(qtbot, tmp_path, ws):
    shutil.copytree(FOLDER, tmp_path / "imgs")
    assert ws.new_from_folder(tmp_path / "imgs", tmp_path / "p.cpmproj.json"), ws.last_error
    before = len(ws.project)
    assert ws.panel.suggest_button.isEnabled() and ws.panel.check_button.isEnabled()
    progress: list[tuple[int, int]] = []
    worker = ws.suggester.start(VIDEO, count=3)
    assert worker is not None and ws.suggester.progress is not None  # a progress dialog while it scores
    worker.progressed.connect(lambda d, t: progress.append((d, t)))
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        pass
    QApplication.processEvents()
    assert not ws.last_error, ws.last_error
    p = ws.project
    assert len(p) == before + 3 and len(ws.suggester.last_added) == 3
    added = [p.frames[i] for i in ws.suggester.last_added]
    for f in added:
        assert f.extras["source"] == VIDEO.name and 0 <= f.extras["frame"] < 20
        assert 0.0 <= f.extras["suggested_score"] <= 1.0 and "stage_shift" in f.extras["suggested_reasons"]
        assert (p.folder / f.image).is_file() and f.image.startswith("hand_clip_frames/")
        assert (f.width, f.height) == (128, 128)
    # saved at once: the file on disk has them
    assert len(AnnotationProject.load(p.path)) == before + 3
    # the list shows them by score, and a click shows the frame
    lst = ws.panel.suggestions
    assert lst.count() == 3 and ws.panel.loop_tabs.currentWidget() is lst
    rows = [lst.item(r).data(Qt.ItemDataRole.UserRole) for r in range(3)]
    scores = [p.frames[i].extras["suggested_score"] for i in rows]
    assert scores == sorted(scores, reverse=True)
    _click_row(qtbot, lst, 2)
    assert ws.index == rows[2]
    # the same video again adds no frame twice
    worker = ws.suggester.start(VIDEO, count=3, dialog=False)
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        pass
    QApplication.processEvents()
    assert len(ws.project) == before + 3


def test_suggest_needs_a_project_a_model_and_a_video(qtbot, tmp_path):
    w = AnnotationWorkspace(lambda: None)
    qtbot.addWidget(w)
    assert w.suggester.start(VIDEO) is None and "no annotation project" in w.last_error
    shutil.copytree(FOLDER, tmp_path / "imgs")
    assert w.new_from_folder(tmp_path / "imgs", tmp_path / "p.cpmproj.json")
    assert w.suggester.start(VIDEO) is None and "no model loaded" in w.last_error
    w.estimator_provider = tiny_estimator
    assert w.suggester.start(tmp_path / "missing.mp4") is None and "no such video" in w.last_error


def test_check_labels_lists_flags_and_jumps_to_them(qtbot, tmp_path, ws):
    ds = read_dataset(TINY_COCO)
    inst = ds.samples[0].instances[0]  # frame 1: thumb and little finger swapped
    inst.keypoints[THUMB + LITTLE] = inst.keypoints[LITTLE + THUMB]
    inst = ds.samples[2].instances[0]  # frame 3: box left beside its hand
    x, y, w, h = inst.bbox
    inst.bbox = (x + 2 * w, y, w, h)
    shutil.copytree(TINY_COCO.parent / "images", tmp_path / "images")
    write_dataset(ds, tmp_path / "bad.json", "coco", write_missing_images=False)
    assert ws.new_from_dataset(tmp_path / "bad.json", tmp_path / "bad.cpmproj.json"), ws.last_error
    qtbot.mouseClick(ws.panel.check_button, Qt.MouseButton.LeftButton)
    lst = ws.panel.checks
    assert ws.panel.loop_tabs.currentWidget() is lst
    flags = ws.checker.flags
    kinds = {(f.sample_index, f.kind) for f in flags}
    assert (0, "swap") in kinds and (2, "box") in kinds, [f.reason for f in flags]
    assert len(flags) == 2 and lst.count() == 2  # the untouched frame is not flagged
    row = next(r for r, f in enumerate(flags) if f.kind == "swap")
    assert "thumb and little" in lst.item(row).text()
    ws.go_to(1)
    _click_row(qtbot, lst, row)
    assert ws.index == 0 and ws.selected == flags[row].joints[0]
    row = next(r for r, f in enumerate(flags) if f.kind == "box")
    _click_row(qtbot, lst, row)
    assert ws.index == 2
    assert "2 flagged" in ws.last_message


def test_check_labels_on_a_clean_project_says_so(qtbot, tmp_path, ws):
    shutil.copytree(TINY_COCO.parent, tmp_path / "tiny")
    assert ws.new_from_dataset(tmp_path / "tiny" / "tiny.json", tmp_path / "t.cpmproj.json"), ws.last_error
    assert ws.checker.run() == []
    assert "No label looks wrong" in ws.panel.checks.item(0).text()
