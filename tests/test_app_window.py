"""The live viewer end to end in-process: real widgets, real threads, a real (tiny) CPM, real media files."""

from __future__ import annotations

import csv
import json
import time

import cv2
import numpy as np
import pytest
from app_support import FOLDER, IMAGE, VIDEO, SlowEstimator, tiny_estimator
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from app.frame_sources import FrameSource, SourceInfo
from app.main_window import VIEW_ORDER, MainWindow
from cpm_core.sources import SourceError
from cpm_core.weights import save_model

WAIT_MS = 15000


def _wait_frames(qtbot, w: MainWindow, n: int = 1) -> None:
    qtbot.waitUntil(lambda: w.displayed >= n, timeout=WAIT_MS)


@pytest.mark.parametrize("source", [VIDEO, IMAGE, FOLDER], ids=["video", "image", "folder"])
def test_open_source_switch_views_toggle_filters(qtbot, window, source):
    assert window.open_source(source)
    _wait_frames(qtbot, window)
    assert window.recent_sources()[0] == str(source)
    for key, name in zip("1234", VIEW_ORDER):
        qtbot.keyClick(window, key)
        assert window.view_name == name
        assert window.display.stack.currentWidget() is window.views[name]
        pose = window.views[name].last
        assert pose is not None and pose.bgra.shape[2] == 4
    # every view drew this source's frame at its size
    h, w = cv2.imread(str(IMAGE if source == IMAGE else next(FOLDER.glob("*.jpg")))).shape[:2] \
        if source != VIDEO else (128, 128)
    assert window.views["single"].panel.image.image.shape[:2] == (h, w) or source == FOLDER
    joints_view = window.views["joints"]
    assert len(joints_view.cells) == 21 and joints_view.cells[0].title.startswith("wrist ")
    assert len(window.views["multi"].cells) == 2  # the tiny model has two stages
    window.viewer_settings.kalman = False
    window.viewer_settings.tracking = True
    window.session.step(1)
    window.session.seek(0)
    # Frames already in flight were made with the old settings; the new ones must arrive.
    qtbot.waitUntil(lambda: (p := window.views["tracker"].last) is not None and p.tracking and not p.kalman,
                    timeout=WAIT_MS)
    window.viewer_settings.kalman = True
    window.viewer_settings.tracking = False


def test_video_plays_at_file_rate_and_controls_work(qtbot, window):
    window.viewer_settings.loop = False
    t0 = time.perf_counter()
    window.open_source(VIDEO)
    qtbot.waitUntil(lambda: window.source_ended, timeout=WAIT_MS)
    elapsed = time.perf_counter() - t0
    assert elapsed >= 19 / 30.0 * 0.8  # 20 frames at 30 fps: not faster than the file's rate
    assert window.capture.position == 19
    window.session.seek(5)
    qtbot.waitUntil(lambda: window.capture.position == 5, timeout=WAIT_MS)
    window.session.step(1)
    qtbot.waitUntil(lambda: window.capture.position == 6, timeout=WAIT_MS)
    window.session.step(-1)
    qtbot.waitUntil(lambda: window.capture.position == 5, timeout=WAIT_MS)
    assert not window.capture.playing
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert window.capture.playing
    qtbot.waitUntil(lambda: window.capture.position == 19, timeout=WAIT_MS)
    # timeline filled for the frames that were processed
    assert window.plots._grid.shape == (21, 20)


def test_the_frame_label_follows_playback_without_relayouting_the_window(qtbot, window):
    """The label under the video is fixed to its widest text for the source, so a new frame number is a
    repaint of the label only, never a new layout of the whole window (toolbars, docks) at video rate."""
    from PySide6.QtCore import QEvent, QObject

    class LayoutCounter(QObject):
        count = 0

        def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.LayoutRequest:
                LayoutCounter.count += 1
            return False

    window.viewer_settings.loop = False
    window.open_source(VIDEO)
    qtbot.waitUntil(lambda: window.source_ended, timeout=WAIT_MS)
    qtbot.wait(100)
    label = window.playback.position_label
    assert label.minimumSize() == label.maximumSize()
    assert label.fontMetrics().horizontalAdvance(" 88888 / 88888") <= label.width()
    window.readout.pause()  # its own text changes may re-lay out the status bar meanwhile
    counter = LayoutCounter()
    window.installEventFilter(counter)
    try:
        # Let the last results and status messages settle first (slow under a loaded CI machine): wait for a
        # quiet 200 ms, so what is counted below is the label's doing alone.
        for _ in range(25):
            LayoutCounter.count = 0
            qtbot.wait(200)
            if LayoutCounter.count == 0:
                break
        assert LayoutCounter.count == 0, "the window never went quiet after the video ended"
        for index in (0, 9, 19, 1, 18):
            window.playback.show_position(index)
            QApplication.processEvents()
        assert label.text() == " 19 / 20"
    finally:
        window.removeEventFilter(counter)
        window.readout.resume()
    assert LayoutCounter.count == 0


def test_slow_model_drops_frames_in_the_app_but_playback_keeps_time(qtbot, window, estimator):
    window.pipeline.set_estimator(SlowEstimator(estimator, delay=0.2))
    window.viewer_settings.loop = False
    t0 = time.perf_counter()
    window.open_source(VIDEO)
    qtbot.waitUntil(lambda: window.source_ended, timeout=WAIT_MS)
    assert time.perf_counter() - t0 < 2.0  # 0.67 s of video does not take 20 x 0.2 s
    qtbot.waitUntil(window.worker.idle, timeout=WAIT_MS)
    assert window.worker.dropped > 5
    assert window.worker.processed < 10
    window.pipeline.set_estimator(estimator)


@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_bad_inputs_leave_app_running_with_message(qtbot, window, tmp_path, estimator):
    window.open_source(VIDEO)
    _wait_frames(qtbot, window)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
    assert not window.open_source(corrupt)
    assert "corrupt" in window.last_error and "corrupt.jpg" in window.statusBar().currentMessage()
    assert not window.open_source(tmp_path / "missing.mp4")
    assert "no such file" in window.last_error
    assert not window.open_source("camera:7")
    assert "camera 7" in window.last_error
    bad_video = tmp_path / "broken.mp4"
    bad_video.write_bytes(b"\x00" * 1000)
    assert not window.open_source(bad_video)
    # the previous source still plays
    assert window.source_info.label == str(VIDEO)
    n = window.displayed
    window.session.seek(0)
    _wait_frames(qtbot, window, n + 1)

    garbage = tmp_path / "weights.pkl"
    garbage.write_bytes(b"\x80\x04 not a pickle at all")
    with qtbot.waitSignal(window.worker.modelFailed, timeout=WAIT_MS):
        assert window.load_model(garbage)
    assert "cannot load model" in window.last_error
    assert window.worker.estimator is estimator
    assert not window.load_model(tmp_path / "nothing.bin")

    # weights that do not fit the card: a 2-stage model saved under a card that claims 3 stages
    folder = save_model(estimator.model, estimator.card, tmp_path / "misfit")
    card = json.loads((folder / "card.json").read_text())
    card["spec"]["stages"] = 3
    (folder / "card.json").write_text(json.dumps(card))
    with qtbot.waitSignal(window.worker.modelFailed, timeout=WAIT_MS) as sig:
        window.load_model(folder)
    # the wording is cpm_core.weights' (being reworded concurrently): either says the card and weights disagree
    assert "do not fit" in sig.args[0] or "does not belong to these weights" in sig.args[0]
    assert window.worker.estimator is estimator
    n = window.displayed
    window.session.seek(3)
    _wait_frames(qtbot, window, n + 1)


def test_interactive_error_shows_non_blocking_message_box(qtbot, tmp_path, estimator):
    w = MainWindow(estimator, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat), quiet=False)
    qtbot.addWidget(w)
    w.show()
    assert not w.open_source(tmp_path / "missing.png", interactive=True)  # returns at once: not modal-blocking
    boxes = [b for b in w.findChildren(QMessageBox) if b.isVisible()]
    assert boxes and "no such file" in boxes[0].text()
    boxes[0].close()
    w.close()


class _UnpluggedCamera(FrameSource):
    """Delivers a few frames, then fails the way CameraFrameSource does when the device disappears."""

    def __init__(self):
        self.info = SourceInfo("camera", "camera:0", 30.0, None, False)
        self.n = 0

    def read(self):
        self.n += 1
        if self.n > 5:
            raise SourceError("camera:0: stopped delivering frames (unplugged?)")
        time.sleep(0.02)
        return self.n - 1, np.full((48, 64, 3), 40 * self.n, np.uint8)


def test_camera_unplugged_mid_stream(qtbot, window):
    window.open_frame_source(_UnpluggedCamera())
    qtbot.waitUntil(lambda: "unplugged" in window.last_error, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.displayed >= 1, timeout=WAIT_MS)  # frames read before the unplug still show
    assert window.open_source(IMAGE)  # the app goes on
    _wait_frames(qtbot, window)


def test_folder_with_corrupt_image_skips_it(qtbot, window, tmp_path):
    for i, f in enumerate(sorted(FOLDER.glob("*.jpg"))[:2]):
        (tmp_path / f"img_{i}.jpg").write_bytes(f.read_bytes())
    (tmp_path / "img_1b.jpg").write_bytes(b"garbage")
    window.viewer_settings.loop = False
    assert window.open_source(tmp_path)
    qtbot.waitUntil(lambda: window.source_ended, timeout=WAIT_MS)
    assert "img_1b.jpg" in window.last_error
    qtbot.waitUntil(lambda: window.displayed >= 2, timeout=WAIT_MS)


def test_record_and_snapshot(qtbot, window, tmp_path):
    window.viewer_settings.loop = False
    window.viewer_settings.realtime = False  # every frame through the model: the recording holds all 20
    assert window.start_recording(tmp_path / "rec.mp4")
    window.open_source(VIDEO)
    qtbot.waitUntil(lambda: window.source_ended and window.worker.idle(), timeout=WAIT_MS)
    rec = window.stop_recording()
    assert rec.frames_written == 20
    cap = cv2.VideoCapture(str(tmp_path / "rec.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 20 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 128
    doc = json.loads((tmp_path / "rec.json").read_text())
    assert [f["frame"] for f in doc["frames"]] == list(range(20))
    assert np.array(doc["frames"][0]["keypoints"]).shape == (21, 3)
    rows = list(csv.reader(open(tmp_path / "rec.csv")))
    assert rows[0][:5] == ["frame", "time", "wrist_x", "wrist_y", "wrist_conf"] and len(rows) == 21
    for name in VIEW_ORDER:
        window.set_view(name)
        out = window.snapshot(tmp_path / f"{name}.png")
        img = cv2.imread(str(out))
        assert img is not None and img.std() > 5


def test_drop_routes_media_and_models(qtbot, window, tmp_path, estimator):
    def drop(path):
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        ev = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                        Qt.KeyboardModifier.NoModifier)
        window.dropEvent(ev)

    drop(IMAGE)
    qtbot.waitUntil(lambda: window.source_info is not None and window.source_info.label == str(IMAGE),
                    timeout=WAIT_MS)
    folder = save_model(estimator.model, estimator.card, tmp_path / "dropped_model")
    with qtbot.waitSignal(window.worker.modelLoaded, timeout=WAIT_MS):
        drop(folder)
    _wait_frames(qtbot, window)


def test_untrained_model_is_flagged_and_shortcuts_listed(qtbot, window):
    assert window.models.badge.text().strip().startswith("model: tiny")
    window.pipeline.set_estimator(tiny_estimator(trained=False))
    window.models.show_model(window.pipeline.estimator)
    assert "UNTRAINED" in window.models.badge.text() and window.models.card_warning.isVisibleTo(window)
    assert "UNTRAINED" in window.models.card_label.text()
    assert "runs on: TensorFlow" in window.models.card_label.text()  # the tiny model has no packed int8 graph
    keys = {k for k, _ in window.shortcut_list()}
    for k in ("1", "2", "3", "4", "Space", "Left", "Right", "Ctrl+O", "Ctrl+S", "Ctrl+R", "F1"):
        assert k in keys, k
    window.show_shortcuts()
    assert "Ctrl+R" in window.shortcuts_box.text()


def test_training_tabs_are_in_the_window_and_load_finished_models(qtbot, window, tmp_path, tiny_spec):
    """Train / Distill / Evaluate live beside the viewer; a finished run's model loads into the viewer."""
    from cpm_core.model_card import ModelCard
    from cpm_core.network import build_cpm
    from cpm_core.weights import save_model

    names = [window.mode_tabs.tabText(i) for i in range(window.mode_tabs.count())]
    assert names == ["Viewer", "Annotate", "Train", "Distill", "Evaluate"]
    window.mode_tabs.setCurrentWidget(window.train_panel)
    model_dir = save_model(build_cpm(tiny_spec), ModelCard.for_spec(tiny_spec, name="freshly-trained"),
                           tmp_path / "trained")
    window.train_panel.model_ready.emit(str(model_dir))
    qtbot.waitUntil(lambda: window.worker.estimator is not None
                    and window.worker.estimator.card.name == "freshly-trained", timeout=WAIT_MS)
    assert window.mode_tabs.currentIndex() == 0


def test_views_paint_at_most_at_the_source_frame_rate_or_the_screen_rate():
    from app.main_window import paint_interval_for

    screen = 1 / 60

    def info(kind, fps):
        return SourceInfo(kind, "x", fps, None, False)

    assert paint_interval_for(screen, info("video", 25.0)) == pytest.approx(1 / 25)
    assert paint_interval_for(screen, info("camera", 30.0)) == pytest.approx(1 / 30)
    assert paint_interval_for(screen, info("video", 120.0)) == pytest.approx(screen)  # the screen is the limit
    assert paint_interval_for(screen, info("video", 0.0)) == pytest.approx(screen)  # unknown rate
    assert paint_interval_for(screen, info("folder", 5.0)) == pytest.approx(screen)  # stills: no frame rate
    assert paint_interval_for(screen, None) == pytest.approx(screen)


def test_opening_a_video_paints_at_its_frame_rate(qtbot, window):
    assert window.open_source(VIDEO)
    fps = window.source_info.fps
    assert 5 <= fps <= 60
    assert window.display.paint_interval == pytest.approx(max(window.display.screen_interval, 1 / fps))
    _wait_frames(qtbot, window)
    assert window.open_source(IMAGE)
    assert window.display.paint_interval == pytest.approx(window.display.screen_interval)


def test_every_result_is_delivered_but_the_view_paints_at_most_at_the_screen_rate(qtbot, window):
    import dataclasses

    assert window.open_source(IMAGE)
    _wait_frames(qtbot, window)
    qtbot.waitUntil(lambda: window.worker.idle(), timeout=WAIT_MS)
    base = window.display.last_drawn
    window.display.paint_interval = 0.3
    window.display.last_draw = time.perf_counter()  # just painted: the next paint waits for the interval
    delivered, painted = window.delivered, window.displayed
    for i in range(10):
        window.display.deliver(dataclasses.replace(base, index=100 + i))
    assert window.delivered == delivered + 10 and window.displayed == painted  # all recorded, none painted yet
    assert window.plots._x[-1] == 109  # the confidence plots got every result
    qtbot.waitUntil(lambda: window.displayed == painted + 1, timeout=WAIT_MS)
    assert window.current_view.last.index == 109  # the paint shows the newest result
    qtbot.wait(400)
    assert window.displayed == painted + 1  # one paint for ten results
