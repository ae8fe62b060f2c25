"""The four live views, each a pyqtgraph GraphicsLayoutWidget that draws a PoseFrame.

Drawing is the fast path from numpy to the screen (BGRA arrays wrapped as QImages without a copy, see
`fast_image.py`); every array a view needs was prepared by the inference worker, so a view's
`show()` does no model work. Views keep the last frame so a threshold or view change redraws at once.
Their `threshold`, `autoscale`, `selected_subject` (and the Tracker view's mode) are set by `app.viewer.display`
from `ViewerSettings`; a view never reads a widget.
With detection on, the frame views draw every subject in its id's colour and the heatmap views show the
selected subject; a click on a subject in any frame view asks the window to select it (`subjectClicked`).
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGraphicsView

from app.heatmap_mosaic import (
    BACKGROUND,
    BACKGROUND_BGRA,
    JET_BGRA,
    HeatmapCell,
    HeatmapMosaic,
    fit_title,
    format_confidence,
    heatmap_levels,
    image_plot,
)
from app.pose_overlay import PoseOverlay, SubjectsOverlay
from cpm_core.pose_frame import PoseFrame
from cpm_core.skeleton import Skeleton
from cpm_core.subject_size import HINT as SMALL_HINT

__all__ = ["BACKGROUND", "BACKGROUND_BGRA", "JET_BGRA", "VIEW_CLASSES", "FramePanel", "HeatmapCell",
           "HeatmapMosaic", "JointsView", "PoseView", "SingleView", "StageGridView", "TrackerView", "fit_title",
           "format_confidence", "heatmap_levels"]


class FramePanel:
    """A frame with the pose on top, in one ViewBox (mouse pans and zooms)."""

    def __init__(self, layout: pg.GraphicsLayout, row: int, col: int, title: str = "", **kwargs):
        self.plot, self.view, self.image = image_plot(layout, row, col, title, **kwargs)
        self.overlay: PoseOverlay | None = None
        self.subjects = SubjectsOverlay(self.view)
        self._shape: tuple[int, ...] | None = None

    def ensure_overlay(self, skeleton: Skeleton) -> PoseOverlay:
        if self.overlay is None or self.overlay.skeleton != skeleton:
            if self.overlay is not None:
                self.overlay.remove()
            self.overlay = PoseOverlay(self.view, skeleton)
            if self._shape is not None:
                self.overlay.set_frame_size(self._shape[1], self._shape[0])
        return self.overlay

    def show_frame(self, bgra: np.ndarray) -> None:
        """Show a frame; the pose drawn on it is sized in proportion to it on screen."""
        self.image.set_bgra(bgra)
        if bgra.shape != self._shape:
            self._shape = bgra.shape
            self.view.autoRange(padding=0.0)
            if self.overlay is not None:
                self.overlay.set_frame_size(bgra.shape[1], bgra.shape[0])

    def show(self, pose: PoseFrame, keypoints: np.ndarray, threshold: float, selected: int | None = None,
             kalman: bool | None = None) -> None:
        """The frame with its pose; with detection, every subject instead (`selected` outlined boldly). A frame
        whose model sees no subject, or a person too small for a whole-frame body pose (`PoseFrame.draws_pose`
        false), gets no pose."""
        self.show_frame(pose.bgra)
        overlay = self.ensure_overlay(pose.skeleton)
        overlay.set_visible(not pose.detecting and pose.draws_pose)
        if pose.detecting:
            chosen = pose.subject(selected)
            self.subjects.update(pose.subjects, pose.skeleton, threshold, chosen.id if chosen else None,
                                 pose.kalman if kalman is None else kalman, (pose.bgra.shape[1], pose.bgra.shape[0]))
        else:
            self.subjects.clear()
            overlay.update(keypoints, threshold)


class PoseView(pg.GraphicsLayoutWidget):
    """Base of the four views: remembers the last frame, threshold and selected subject."""

    title = ""
    subjectClicked = Signal(int)  # the id of a detected subject clicked in this view's frame panel

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground(BACKGROUND)
        # pyqtgraph caches the background as a pixmap; for a plain colour, blitting that pixmap cost more than
        # filling: 0.49 against 0.31 ms a repaint of the empty 1070x606 multi view, ~0.25 ms of a full one.
        self.setCacheMode(QGraphicsView.CacheModeFlag.CacheNone)
        self.last: PoseFrame | None = None
        self.threshold = 0.1
        self.autoscale = False  # heatmap tiles use their own range instead of [0, 1]
        self.selected_subject: int | None = None  # None: the lowest id present
        self.scene().sigMouseClicked.connect(self._on_click)

    def _on_click(self, event) -> None:
        panel: FramePanel | None = getattr(self, "panel", None)
        pose = self.last
        if panel is None or pose is None or not pose.detecting or event.button() != Qt.MouseButton.LeftButton:
            return
        if not panel.view.sceneBoundingRect().contains(event.scenePos()):
            return
        point = panel.view.mapSceneToView(event.scenePos())
        sid = pose.subject_at(point.x(), point.y())
        if sid is not None:
            self.subjectClicked.emit(sid)

    def show_pose(self, pose: PoseFrame) -> None:
        self.last = pose
        self._draw(pose)

    def redraw(self) -> None:
        if self.last is not None:
            self._draw(self.last)

    def set_threshold(self, threshold: float) -> None:
        self.threshold = threshold
        self.redraw()

    def _draw(self, pose: PoseFrame) -> None:
        raise NotImplementedError


class SingleView(PoseView):
    """The port's SINGLE view: the frame with the final pose."""

    title = "Single"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.panel = FramePanel(self.ci, 0, 0, "frame and final pose")

    def _draw(self, pose: PoseFrame) -> None:
        self.panel.show(pose, pose.shown, self.threshold, self.selected_subject)


class StageGridView(PoseView):
    """The port's MULTI view: every stage's max-over-joints heatmap in a grid, beside the frame and pose."""

    title = "Multi-stage"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.panel = FramePanel(self.ci, 0, 0, "frame and final pose")
        self.mosaic = HeatmapMosaic(self.ci, 0, 1, tile=160)
        self.ci.layout.setColumnStretchFactor(0, 3)
        self.ci.layout.setColumnStretchFactor(1, 2)

    @property
    def cells(self) -> list[HeatmapCell]:
        return self.mosaic.cells

    def _draw(self, frame: PoseFrame) -> None:
        pose = frame.for_subject(self.selected_subject)  # the selected subject's heatmaps when detecting
        chosen = frame.subject(self.selected_subject)
        prefix = f"#{chosen.id} " if chosen is not None else ""
        stages = pose.stage_max.shape[0]
        titles = [f"{prefix}stage {i + 1} \u00b7 mean confidence {format_confidence(pose.stage_conf[i])}"
                  for i in range(stages)]
        self.mosaic.show(list(pose.stage_max), titles, 2 if stages <= 4 else 3, self.autoscale)
        self.panel.show(frame, frame.shown, self.threshold, self.selected_subject)


class JointsView(PoseView):
    """The port's HM view: each joint's last-stage heatmap, titled with the joint's name and peak."""

    title = "Joints"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.mosaic = HeatmapMosaic(self.ci, 0, 0)

    @property
    def cells(self) -> list[HeatmapCell]:
        return self.mosaic.cells

    def _draw(self, frame: PoseFrame) -> None:
        pose = frame.for_subject(self.selected_subject)
        chosen = frame.subject(self.selected_subject)
        prefix = f"#{chosen.id} " if chosen is not None else ""
        joints = pose.skeleton.joints
        last = pose.result.heatmaps[-1]
        titles = [f"{prefix}{name} {format_confidence(pose.joint_peaks[j])}" for j, name in enumerate(joints)]
        self.mosaic.show([last[..., j] for j in range(len(joints))], titles, math.ceil(math.sqrt(len(joints))),
                         self.autoscale)


class TrackerView(PoseView):
    """Self-tracking at work: the crop the model looked at and the Kalman-smoothed pose (and/or the raw one)."""

    title = "Tracker"
    MODES = ("smoothed", "raw", "both")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.panel = FramePanel(self.ci, 0, 0, "self-tracking crop and pose")
        self.raw_overlay: PoseOverlay | None = None
        self.box = pg.PlotCurveItem(pen=pg.mkPen((255, 220, 0), width=2, style=Qt.PenStyle.DashLine))
        self.box.setZValue(5)
        self.panel.view.addItem(self.box)
        self.status = pg.TextItem(anchor=(0, 0), color=(255, 255, 255), fill=(0, 0, 0, 150))
        self.status.setZValue(20)
        self.panel.view.addItem(self.status)
        self.mode = "smoothed"

    def set_mode(self, mode: str) -> None:
        if mode not in self.MODES:
            raise ValueError(f"tracker view mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self.redraw()

    def _draw(self, pose: PoseFrame) -> None:
        if pose.detecting:
            self._draw_subjects(pose)
            return
        skeleton = pose.skeleton
        self.panel.show_frame(pose.bgra)
        self.panel.subjects.clear()
        main = self.panel.ensure_overlay(skeleton)
        main.set_visible(pose.draws_pose)  # no subject (or too small) in view: no skeleton on whatever it holds
        if self.raw_overlay is None or self.raw_overlay.skeleton != skeleton:
            if self.raw_overlay is not None:
                self.raw_overlay.remove()
            self.raw_overlay = PoseOverlay(self.panel.view, skeleton, width=1.5, alpha=140,
                                           style=Qt.PenStyle.DashLine, z=8)
        self.raw_overlay.set_frame_size(pose.bgra.shape[1], pose.bgra.shape[0])
        mode = self.effective_mode(pose)
        main.update(pose.raw if mode == "raw" else pose.smoothed, self.threshold)
        self.raw_overlay.set_visible(mode == "both" and pose.draws_pose)
        if mode == "both":
            self.raw_overlay.update(pose.raw, self.threshold)
        corners = pose.crop.corners()
        closed = np.vstack([corners, corners[:1]])
        self.box.setData(closed[:, 0], closed[:, 1])
        if pose.tracking:
            state = "LOST: centred square" if pose.tracker_lost else "tracking"
            text = f"self-tracking: {state} (score {pose.tracker_score:.2f}), crop {pose.crop.side:.0f}px"
        else:
            h, w = pose.bgra.shape[:2]
            whole = abs(pose.crop.side - max(w, h)) < 1.0 and not pose.crop.angle
            text = "self-tracking off: " + ("whole frame (letterboxed)" if whole else
                                            "the upright model's crop follows the hand")
        crop = pose.crop
        if crop.angle or crop.mirror:  # an upright model: the crop follows the hand's angle (and side)
            text += f"\ncrop turned {crop.angle:.0f}\u00b0{', mirrored (thumb side left)' if crop.mirror else ''}"
        if pose.small_subject:
            pose_text = f"none: no person big enough for the whole frame (presence {pose.presence:.2f}); {SMALL_HINT}"
        elif pose.present:
            pose_text = self.mode_text(pose)
        else:
            pose_text = f"none: nothing in view (presence {pose.presence:.2f}), searching"
        self.status.setText(f"{text}\npose: {pose_text}")
        self.status.setPos(0, 0)

    def effective_mode(self, pose: PoseFrame) -> str:
        """The pose drawn: the chosen mode, but always the raw pose when Kalman smoothing is off (K), because
        then there is no smoothed pose to show (the view said "pose: smoothed" and drew the filter's output)."""
        return self.mode if pose.kalman else "raw"

    def mode_text(self, pose: PoseFrame) -> str:
        return self.mode if pose.kalman else "raw (Kalman off)"

    def _draw_subjects(self, pose: PoseFrame) -> None:
        """Detection replaces self-tracking: each subject's crop and pose (raw or smoothed by the mode)."""
        kalman = self.effective_mode(pose) != "raw"
        self.panel.show(pose, pose.shown, self.threshold, self.selected_subject, kalman=kalman)
        if self.raw_overlay is not None:
            self.raw_overlay.set_visible(False)
        self.box.setData([], [])
        ids = ", ".join(f"#{s.id}" for s in pose.subjects) or "none"
        n = len(pose.subjects)
        self.status.setText(f"detector {pose.detector}: {n} subject{'' if n == 1 else 's'} ({ids})\n"
                            f"pose: {'smoothed' if kalman else self.mode_text(pose)}")
        self.status.setPos(0, 0)


VIEW_CLASSES: dict[str, type[PoseView]] = {
    "multi": StageGridView, "single": SingleView, "joints": JointsView, "tracker": TrackerView,
}
