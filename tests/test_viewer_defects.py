"""Issue #21, items 1-9 (the viewer and recording) and its follow-ups: each test drives real widgets (offscreen) on
the tiny real CPM and fails on the behaviour a user met in a real window."""

from __future__ import annotations

import csv
import json
import time
from types import SimpleNamespace

import numpy as np
import pyqtgraph as pg
import pytest
from app_support import IMAGE, VIDEO
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QFontMetrics, QImage
from PySide6.QtWidgets import QApplication

from cpm_core.skeleton import BODY_14, HAND_21

WAIT_MS = 15000


def _tab(window, name: str) -> None:
    tabs = window.mode_tabs
    tabs.setCurrentIndex([tabs.tabText(i) for i in range(tabs.count())].index(name))


def _hand_points(n: int = 21, spread: float = 200.0) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([360 + spread * np.cos(angles), 360 + spread * np.sin(angles)], axis=1)


def _frame(heatmap_peak: float = 1.0, conf: float = 0.9, kalman: bool = True, shift: float = 0.0):
    """A PoseFrame built as the pipeline builds it: 2 stages, 21 joints, a 720x720 grey frame."""
    from cpm_core.estimator import PoseResult
    from cpm_core.pose_frame import PipelineCounts, PoseFrame
    from cpm_core.preprocess import CropBox, CropTransform

    crop = CropBox(360, 360, 720)
    kp = np.concatenate([_hand_points(), np.full((21, 1), conf)], axis=1).astype(np.float32)
    heatmaps = np.zeros((2, 16, 16, 22), np.float32)
    for j in range(21):
        heatmaps[:, 3 + j % 10, 3 + j // 10, j] = heatmap_peak
    result = PoseResult(kp, heatmaps, CropTransform(crop, 128), target_sigma=2.0)
    smoothed = kp.copy()
    smoothed[:, :2] += shift
    return PoseFrame.build(index=0, generation=0, frame_bgr=np.full((720, 720, 3), 90, np.uint8), result=result,
                           skeleton=HAND_21, raw=kp, smoothed=smoothed, kalman=kalman, crop=crop,
                           counts=PipelineCounts(), latency_ms=1.0, timings={})


# --- 1 panels -------------------------------------------------------------------------------------------------

def test_each_tab_gets_its_docks_back_as_the_user_left_them(qtbot, window):
    controls, plots = window.controls_dock, window.plots_dock
    assert not controls.isHidden() and not plots.isHidden()
    for trip in (("Annotate", "Train", "Viewer"), ("Distill", "Evaluate", "Viewer"), ("Train", "Viewer")):
        for name in trip:
            _tab(window, name)
            if name != "Viewer":
                assert controls.isHidden() and plots.isHidden()  # the canvas and forms get the room
        assert not controls.isHidden() and not plots.isHidden(), trip
    controls.hide()  # the user's own choice in the viewer stays through a trip
    for name in ("Annotate", "Train", "Viewer"):
        _tab(window, name)
    assert controls.isHidden() and not plots.isHidden()
    _tab(window, "Annotate")
    plots.show()  # the user wants the plots in Annotate: they stay there, and only there
    _tab(window, "Train")
    assert plots.isHidden()
    _tab(window, "Annotate")
    assert not plots.isHidden()
    _tab(window, "Viewer")
    assert controls.isHidden() and not plots.isHidden()


def test_the_viewer_plays_again_when_it_was_playing_as_it_was_left(qtbot, window):
    assert window.open_source(VIDEO)  # loops: it plays until paused
    qtbot.waitUntil(lambda: window.displayed >= 1, timeout=WAIT_MS)
    assert window.session.playing
    _tab(window, "Annotate")
    assert not window.session.playing  # the model is the labelling assistant's now
    _tab(window, "Train")
    _tab(window, "Viewer")
    assert window.session.playing
    window.session.set_playing(False)  # paused by the user: stays paused through a trip
    _tab(window, "Annotate")
    _tab(window, "Viewer")
    assert not window.session.playing


# --- 2 stage-confidence plot ------------------------------------------------------------------------------------

def _pose(index: int, restart: bool = False, conf=(0.2, 0.5)) -> SimpleNamespace:
    return SimpleNamespace(index=index, stage_conf=np.array(conf), joint_peaks=np.full(21, 0.5, np.float32),
                           restart=restart)


def _shown_plots(qtbot):
    from app.plots import ConfidencePlotsWidget

    plots = ConfidencePlotsWidget()
    qtbot.addWidget(plots)
    plots.resize(1200, 220)
    plots.show()
    qtbot.waitExposed(plots)
    return plots


def test_stage_plot_is_by_frame_index_with_gaps_reset_on_restart_and_spans_the_video(qtbot):
    plots = _shown_plots(qtbot)
    plots.reset(150)
    for i in (0, 1, 2, 5, 6):  # 3 and 4 were dropped
        plots.add(_pose(i, restart=i == 0))
    plots.redraw()
    curve = plots._curves[0]
    x, y = curve.getData()
    assert curve.opts["connect"] == "finite"  # a NaN breaks the line
    finite = {int(v) for v in x[np.isfinite(y)]}
    assert finite == {0, 1, 2, 5, 6}
    assert np.isnan(y[(x == 3) | (x == 4)]).all()  # the gap is a gap, not a line from 2 to 5
    lo, hi = plots.stage_plot.getViewBox().viewRange()[0]
    assert lo == pytest.approx(0, abs=1) and hi == pytest.approx(149, abs=1)  # the video's frames, as the timeline
    for i in range(140, 150):
        plots.add(_pose(i))
    plots.add(_pose(0, restart=True))  # the loop starts over: the previous pass is gone, no line 149 -> 0
    plots.redraw()
    x, y = plots._curves[0].getData()
    assert {int(v) for v in x[np.isfinite(y)]} == {0}
    plots.add(_pose(1))
    plots.add(_pose(80, restart=True))  # a seek forward: only the new stretch
    plots.add(_pose(81))
    plots.redraw()
    x, y = plots._curves[0].getData()
    assert {int(v) for v in x[np.isfinite(y)]} == {80, 81}
    QApplication.processEvents()
    legend = plots.stage_legend.sceneBoundingRect()
    assert legend.width() > 0 and all(f"{i}</span>" in plots.stage_legend.text for i in (1, 2))
    assert not legend.intersects(plots.stage_plot.getViewBox().sceneBoundingRect())  # outside, not over, the curves


def test_stage_plot_shows_frames_processed_between_gaps(qtbot):
    """A slow model processes every other frame: each point sits between gaps, and must still be seen."""
    plots = _shown_plots(qtbot)
    plots.reset(150)
    for i in range(0, 150, 2):
        plots.add(_pose(i, restart=i == 0))
    plots.redraw()
    curve = plots._curves[0]
    assert curve.opts["symbol"] is not None and np.isfinite(curve.scatter.data["y"]).sum() == 75  # a dot each


def test_stage_plot_of_a_live_source_breaks_its_line_where_frames_are_missing(qtbot):
    plots = _shown_plots(qtbot)
    plots.reset(None)
    for i in (0, 1, 2, 7, 8):
        plots.add(_pose(i, restart=i == 0))
    plots.redraw()
    x, y = plots._curves[0].getData()
    between = (x > 2) & (x < 7)
    assert between.any() and np.isnan(y[between]).all()


# --- 3 timeline ---------------------------------------------------------------------------------------------------

def test_timeline_axes_at_start_up_read_frames_and_joints(qtbot):
    plots = _shown_plots(qtbot)
    QApplication.processEvents()
    left = plots.timeline_plot.getAxis("left")
    assert left.autoSIPrefixScale == 1.0 and "x0.001" not in left.labelString()
    (x0, x1), (y0, y1) = plots.timeline_plot.viewRange()
    assert x0 >= -1 and y0 >= -1 and y1 <= 30  # frames from 0 and joints, not -400..400


def test_clicking_the_timeline_seeks_the_video_there(qtbot, window):
    window.viewer_settings.loop = False
    assert window.open_source(VIDEO)
    qtbot.waitUntil(lambda: window.source_ended and window.worker.idle(), timeout=WAIT_MS)
    plots = window.plots
    plots.redraw()
    QApplication.processEvents()
    scene = plots.timeline_plot.getViewBox().mapViewToScene(QPointF(12.5, 5.0))
    pos = plots.mapFromScene(scene)
    with qtbot.waitSignal(plots.seekRequested, timeout=WAIT_MS) as sig:
        qtbot.mouseClick(plots.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert sig.args == [12]
    qtbot.waitUntil(lambda: window.capture is not None and window.capture.position == 12, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.display.last_drawn is not None and window.display.last_drawn.index == 12,
                    timeout=WAIT_MS)


# --- 4 dropped counter -------------------------------------------------------------------------------------------

def test_dropped_counter_counts_this_source_only_and_says_what_it_counts(qtbot, window):
    window.pipeline.dropped += 1055  # drops of sources and loops before this one
    assert window.open_source(IMAGE)
    qtbot.waitUntil(lambda: window.displayed >= 1, timeout=WAIT_MS)
    window.update_readout()
    assert "dropped 0" in window.readout.text()
    tip = window.readout.toolTip().lower()
    assert "dropped" in tip and "source" in tip and "model" in tip


# --- 5 heatmap titles --------------------------------------------------------------------------------------------

def test_heatmap_titles_are_drawn_in_a_real_font_and_fit_their_tile(qtbot):
    from app.views import BACKGROUND_BGRA, HeatmapMosaic, fit_title

    widget = pg.GraphicsLayoutWidget()
    qtbot.addWidget(widget)
    mosaic = HeatmapMosaic(widget.ci, 0, 0, tile=160)
    title = "#2 stage 1 \u00b7 mean confidence 0.93"  # with Detect on, the longest stage title
    mosaic.show([np.zeros((8, 8), np.float32)], [title], cols=1)
    band = mosaic.image.image[:mosaic.TITLE_BAND, :mosaic.tile]
    ink = (band != np.asarray(BACKGROUND_BGRA, np.uint8)).any(axis=-1)
    columns = np.flatnonzero(ink.any(axis=0))
    assert columns.size and columns.max() < mosaic.tile - 2  # nothing runs off the tile's edge
    font, text = fit_title(title, mosaic.tile, mosaic.TITLE_BAND)
    assert QFontMetrics(font).horizontalAdvance(text) <= mosaic.tile - 2
    assert text.startswith("#2 stage 1") and font.pixelSize() >= 8  # readable, the start kept
    assert mosaic.cells[0].title == title  # the full title stays readable to code (and tests)


# --- 6 confidences -----------------------------------------------------------------------------------------------

def test_confidences_are_clipped_to_0_1_in_views_json_and_csv(qtbot, tmp_path):
    from app.views import JointsView, StageGridView
    from cpm_core.recorder import PoseRecorder

    frame = _frame(heatmap_peak=1.03, conf=1.02)
    assert frame.joint_peaks.max() <= 1.0 and frame.stage_conf.max() <= 1.0
    assert frame.raw[:, 2].max() <= 1.0 and frame.smoothed[:, 2].max() <= 1.0
    joints, stages = JointsView(), StageGridView()
    for view in (joints, stages):
        qtbot.addWidget(view)
        view.show_pose(frame)
    assert joints.cells[4].title == "thumb4 1.00"
    assert all("peak" not in c.title and "confidence" in c.title for c in stages.cells)
    rec = PoseRecorder(tmp_path / "r.mp4", HAND_21, 30.0)
    kp = frame.result.keypoints.copy()
    kp[:, 2] = 1.02
    rec.add(np.zeros((64, 64, 3), np.uint8), kp, 0)
    rec.close()
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["keypoint_format"][2] == "confidence"
    assert max(row[2] for row in doc["frames"][0]["keypoints"]) == 1.0
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert float(rows[0]["thumb3_conf"]) == 1.0


# --- 7 overlay ---------------------------------------------------------------------------------------------------

def test_tracker_view_with_kalman_off_draws_and_says_the_raw_pose(qtbot):
    from app.views import TrackerView

    view = TrackerView()
    qtbot.addWidget(view)
    view.set_mode("smoothed")
    frame = _frame(kalman=False, shift=25.0)
    view.show_pose(frame)
    text = view.status.textItem.toPlainText()
    assert "smoothed" not in text and "raw" in text and "Kalman off" in text
    np.testing.assert_allclose(view.panel.overlay.item._kp[:, :2], frame.raw[:, :2])
    view.show_pose(_frame(kalman=True, shift=25.0))
    assert "pose: smoothed" in view.status.textItem.toPlainText()


def test_k_on_a_paused_frame_redraws_it_raw(qtbot, window):
    window.set_view("tracker")
    assert window.open_source(IMAGE)  # a still: processed once, then nothing more unless settings change
    qtbot.waitUntil(lambda: window.displayed >= 1 and window.worker.idle(), timeout=WAIT_MS)
    status = window.views["tracker"].status
    assert "pose: smoothed" in status.textItem.toPlainText()
    qtbot.keyClick(window, Qt.Key.Key_K)
    qtbot.waitUntil(lambda: "Kalman off" in status.textItem.toPlainText(), timeout=WAIT_MS)


def _dot_pixels(qtbot, size: int, colour: tuple[int, int, int]) -> tuple[int, QColor]:
    """Two lone joints (thumb tip, little tip) on a black 720x720 frame in a `size` px view: how many pixels the
    thumb's dot covers, and the colour at its centre."""
    from app.views import FramePanel

    widget = pg.GraphicsLayoutWidget()
    qtbot.addWidget(widget)
    widget.resize(size, size)
    panel = FramePanel(widget.ci, 0, 0)
    panel.show_frame(np.zeros((720, 720, 4), np.uint8) + np.uint8([0, 0, 0, 255]))
    overlay = panel.ensure_overlay(HAND_21)
    kp = np.zeros((21, 3))
    kp[:, 2] = 0.0  # below the threshold: not drawn
    kp[4] = (200, 360, 1.0)
    kp[20] = (520, 360, 1.0)
    overlay.update(kp, 0.1)
    widget.show()
    qtbot.waitExposed(widget)
    QApplication.processEvents()
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    centre = panel.view.mapViewToScene(QPointF(200, 360))
    at = widget.mapFromScene(centre)
    arr = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine() // 4, 4)
    rgb = arr[:, :image.width(), 2::-1].astype(int)
    near = np.abs(rgb - np.asarray(colour)).sum(axis=-1) < 60
    ys, xs = np.nonzero(near)
    close = (np.abs(xs - at.x()) < size // 8) & (np.abs(ys - at.y()) < size // 8)
    return int(close.sum()), image.pixelColor(at.x(), at.y())


def test_joint_dots_take_their_finger_colour_and_size_with_the_window(qtbot):
    from cpm_core.render import joint_colours

    bgr = joint_colours(HAND_21)
    thumb = [bgr[j] for j in range(1, 5)]
    assert len(set(thumb)) == 1 and bgr[4] != bgr[8] != bgr[12] != bgr[16] != bgr[20]
    assert len({bgr[4], bgr[8], bgr[12], bgr[16], bgr[20]}) == 5  # one colour per finger
    left, right = joint_colours(HAND_21, "left"), joint_colours(HAND_21, "right")
    assert left[8] != right[8]  # and by side
    body = joint_colours(BODY_14)
    assert body[BODY_14.joints.index("left_wrist")] != body[BODY_14.joints.index("right_wrist")]
    b, g, r = bgr[4]
    small, small_centre = _dot_pixels(qtbot, 200, (r, g, b))
    large, large_centre = _dot_pixels(qtbot, 800, (r, g, b))
    for centre in (small_centre, large_centre):
        assert abs(centre.red() - r) + abs(centre.green() - g) + abs(centre.blue() - b) < 60  # not all green
    assert 0 < small < large  # smaller in a small window ...
    assert small / 200 ** 2 < 3 * large / 800 ** 2  # ... in proportion to the frame, not a fixed size
    assert small < 60  # a few pixels across at 200 px: fingers stay visible


# --- 8 View menu toggles ------------------------------------------------------------------------------------------

def test_view_menu_toggles_show_their_state(qtbot, window):
    s = window.viewer_settings
    acts = window.toggle_actions
    assert set(acts) == {"kalman", "tracking", "loop", "detect"}
    for name, act in acts.items():
        assert act.isCheckable() and act.isChecked() == getattr(s, name), name
    qtbot.keyClick(window, Qt.Key.Key_K)
    assert s.kalman is False and not acts["kalman"].isChecked()
    acts["tracking"].trigger()
    assert s.tracking is True and acts["tracking"].isChecked()
    s.loop = False  # changed elsewhere (the Controls dock, a script): the menu follows
    assert not acts["loop"].isChecked()
    s.tracking = False


# --- 9 recording -------------------------------------------------------------------------------------------------

def test_recording_processes_every_frame_and_writes_index_and_time_per_row(qtbot, window, tmp_path):
    s = window.viewer_settings
    assert s.realtime
    s.loop = False
    assert window.start_recording(tmp_path / "rec.mp4")
    assert not s.realtime and window.realtime_action.isChecked()  # every frame while recording, shown as such
    window.open_source(VIDEO)
    qtbot.waitUntil(lambda: window.source_ended and window.worker.idle(), timeout=WAIT_MS)
    rec = window.stop_recording()
    assert s.realtime  # the user's choice back
    assert rec.frames_written == 20
    doc = json.loads((tmp_path / "rec.json").read_text())
    assert [f["frame"] for f in doc["frames"]] == list(range(20))
    fps = doc["fps"]
    assert [f["time"] for f in doc["frames"]] == pytest.approx([i / fps for i in range(20)], abs=1e-3)
    rows = list(csv.DictReader(open(tmp_path / "rec.csv")))
    assert [int(r["frame"]) for r in rows] == list(range(20))
    assert float(rows[3]["time"]) == pytest.approx(3 / fps, abs=1e-3)


# --- follow-ups ----------------------------------------------------------------------------------------------------

def test_f1_lists_the_annotate_shortcuts_too(qtbot, window):
    window.show_shortcuts()
    text = window.shortcuts_box.text()
    assert "Viewer" in text and "Annotate tab" in text
    annotate_keys = window.annotate.shortcut_list()
    assert annotate_keys and all(name in text for _k, name in annotate_keys)
    assert "Ctrl+R" in text


def test_speed_readout_shows_in_the_viewer_only(qtbot, window):
    assert window.readout.isVisible()
    _tab(window, "Annotate")
    assert not window.readout.isVisible()
    window.show_status("a long message from the Annotate tab " * 3)
    assert window.statusBar().currentMessage().startswith("a long message")
    _tab(window, "Viewer")
    assert window.readout.isVisible()


def test_worker_has_no_deprecated_post_step():
    from app.inference import InferenceWorker

    assert not hasattr(InferenceWorker, "_finish")  # the pipeline's public `finish` is the post step


def test_restart_of_a_dropped_frame_is_kept(qtbot):
    """A seek's first frame replaced in the mailbox by the next one must still restart the filters and plots."""
    from cpm_core.live_pipeline import FramePacket, LivePipeline

    pipeline = LivePipeline()
    img = np.zeros((8, 8, 3), np.uint8)
    pipeline.submit(FramePacket(40, img, time.perf_counter(), restart=True))
    pipeline.submit(FramePacket(41, img, time.perf_counter()))
    assert pipeline.dropped == 1 and pipeline._pending.index == 41 and pipeline._pending.restart
