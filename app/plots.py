"""Live confidence plots: mean joint confidence per stage by frame, and a per-joint timeline for videos.

The stage plot shows whether later stages sharpen the earlier ones (they should, on a trained model); the
timeline is a joints x frames image, filled in as frames are processed, so weak stretches of a video stand out
(frames the model did not process stay grey). Both are by frame index: for a video or folder the stage plot spans
its frames like the timeline, a frame the model did not process is a gap (NaN) rather than a line joining its
neighbours, and a restart (a loop back to frame 0, a seek) starts the stage plot afresh, so no line joins the end
of one pass to the start of the next. A click on either plot asks to seek to that frame (`seekRequested`).

Both sit in the GUI thread beside a model that may deliver 100 results a second, so they cost little: results
are recorded at once but drawn at most every REDRAW_S, a live source's x range moves by half pages (a range
that changed on every redraw re-rendered both axes' labels each time) and the timeline is coloured with one
table lookup and blitted (`FastImageItem`).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal

from app.fast_image import FastImageItem, bgra_lut, colour_map
from app.pose_overlay import jet_lut
from cpm_core.pose_frame import PoseFrame

HISTORY = 300  # results kept in a live source's stage plot (and the width of its x range)
PAGE = HISTORY // 2  # a live source's x range jumps by this many frames, keeping the newest in its second half
REDRAW_S = 0.5  # plots need not move at video rate: a redraw and repaint took 5-9 ms of the GUI thread
LIVE_TIMELINE = 600  # columns of the rolling timeline for live / unknown-length sources
DEFAULT_JOINTS = 21  # the timeline's height before the first result says how many joints the model has
# Timeline columns of frames the model did not process (dropped to keep up, or not reached yet): grey, so a
# stretch of drops never reads as a stretch of zero confidence (the colour map's dark blue).
UNSEEN_BGRA = (70, 70, 70, 255)


def _plain_axes(plot: pg.PlotItem) -> None:
    """Axes that read in frames and joints: no SI prefix (an empty plot's -400..400 read "joint (x0.001)")."""
    for name in ("left", "bottom"):
        plot.getAxis(name).enableAutoSIPrefix(False)


class ConfidencePlotsWidget(pg.GraphicsLayoutWidget):
    """The stage plot, its legend beside it (never over the curves) and the per-joint timeline."""

    seekRequested = Signal(int)  # a click on a plot: the frame under it

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground((30, 30, 30))
        self.stage_plot = self.ci.addPlot(row=0, col=0, title="mean confidence per stage")
        self.stage_plot.setLabel("bottom", "frame")
        self.stage_plot.setYRange(0, 1, padding=0.05)
        self.stage_plot.disableAutoRange(axis="x")
        self.stage_plot.setMouseEnabled(x=False, y=False)
        _plain_axes(self.stage_plot)
        self.stage_legend = self.stage_plot.titleLabel  # the stages' colour keys, above the curves (`_key_title`)
        self._x_range: tuple[int, int] | None = None
        self.timeline_plot = self.ci.addPlot(row=0, col=1, title="per-joint confidence timeline")
        self.timeline_plot.setLabel("bottom", "frame")
        self.timeline_plot.setLabel("left", "joint")
        self.timeline_plot.invertY(True)
        self.timeline_plot.setMouseEnabled(x=False, y=False)
        self.timeline_plot.hideButtons()
        _plain_axes(self.timeline_plot)
        self.timeline = FastImageItem()
        self.timeline_plot.addItem(self.timeline)
        self.cursor = pg.InfiniteLine(angle=90, pen=pg.mkPen((255, 255, 255, 160)))
        self.timeline_plot.addItem(self.cursor)
        self.ci.layout.setColumnStretchFactor(0, 1)
        self.ci.layout.setColumnStretchFactor(1, 2)
        self._curves: list[pg.PlotDataItem] = []
        self._x = np.zeros(0)
        self._y = np.zeros((0, 0))
        self._grid = np.zeros((0, 0), np.float32)
        self._frame_count: int | None = None
        self._joints = DEFAULT_JOINTS
        self._lut = bgra_lut(jet_lut())
        self._last_redraw = 0.0
        self._col = 0
        self.autoscale = False  # colour the timeline over its own range, and fit the stage plot to the data
        self.scene().sigMouseClicked.connect(self._on_click)
        self.reset(None)

    def reset(self, frame_count: int | None, show_timeline: bool = True) -> None:
        """Clear for a new source; `frame_count` sizes the timeline and the stage plot (None: rolling window)."""
        self._frame_count = frame_count if frame_count and frame_count > 0 else None
        self._clear_stages(len(self._curves))
        self._grid = np.zeros((0, 0), np.float32)
        self._x_range = None
        self.timeline.clear()
        self.timeline_plot.setVisible(show_timeline)
        width = self._frame_count or LIVE_TIMELINE
        self.timeline_plot.setRange(xRange=(0, width), yRange=(0, self._joints), padding=0.0)
        if self._frame_count:
            self._set_x_range(0, self._frame_count - 1)
        else:
            self._set_x_range(0, HISTORY)

    def _clear_stages(self, stages: int) -> None:
        """Empty stage curves: for a known length every frame's slot (NaN until processed), else no rows."""
        n = self._frame_count or 0
        self._x = np.arange(n, dtype=np.float64)
        self._y = np.full((n, stages), np.nan)
        for c in self._curves:
            c.setData([], [])

    def set_autoscale(self, on: bool) -> None:
        self.autoscale = on
        if on:
            self.stage_plot.enableAutoRange(axis="y")
        else:
            self.stage_plot.setYRange(0, 1, padding=0.05)

    def _ensure_curves(self, stages: int) -> None:
        if len(self._curves) == stages:
            return
        for c in self._curves:
            self.stage_plot.removeItem(c)
        colours = [pg.intColor(i, hues=max(stages, 3), sat=150) for i in range(stages)]  # light: dark ground
        # Lines join consecutive frames only; a dot marks every processed frame, so a stretch where the model
        # keeps up with every other frame (each point between gaps) still shows.
        self._curves = [self.stage_plot.plot(pen=c, connect="finite", symbol="o", symbolSize=3, symbolPen=None,
                                             symbolBrush=c) for c in colours]
        self._key_title(colours)
        self._clear_stages(stages)

    def _key_title(self, colours: list) -> None:
        """The legend as the plot's title, one coloured key per stage: a legend inside the plot covered the
        curves, and one beside it took the room of the x axis."""
        keys = "&nbsp;".join(f"<span style='color:{c.name()}'>&#9632;&nbsp;{i + 1}</span>"
                             for i, c in enumerate(colours))
        self.stage_plot.setTitle(f"mean confidence per stage&nbsp;&nbsp;{keys}")

    def add(self, pose: PoseFrame) -> None:
        """Record one frame's confidences; the plots themselves redraw at most every REDRAW_S seconds."""
        self._record(pose)
        now = time.perf_counter()
        if now - self._last_redraw >= REDRAW_S:
            self._last_redraw = now
            self.redraw()

    def redraw(self) -> None:
        for i, c in enumerate(self._curves):
            c.setData(self._x, self._y[:, i], connect="finite")
        if self._x.size and not self._frame_count:
            self._follow_x(int(self._x[-1]))
        if self.timeline_plot.isVisible() and self._grid.size:
            unseen = np.isnan(self._grid)
            top = float(np.max(self._grid, where=~unseen, initial=0.0))
            levels = (0.0, max(top, 1e-12)) if self.autoscale else (0.0, 1.0)
            resized = self.timeline.image is None or self.timeline.image.shape[:2] != self._grid.shape
            colours = colour_map(self._grid, levels, self._lut)
            colours[unseen] = UNSEEN_BGRA
            self.timeline.set_bgra(colours)
            if resized:
                rows, cols = self._grid.shape
                self.timeline_plot.setRange(xRange=(0, cols), yRange=(0, rows), padding=0.0)
            self.cursor.setValue(self._col + 0.5)

    def _set_x_range(self, lo: int, hi: int) -> None:
        self._x_range = (lo, hi)
        self.stage_plot.setXRange(lo, hi, padding=0.0)

    def _follow_x(self, newest: int) -> None:
        """A live source: move the x range only when the newest frame leaves it, by half pages."""
        lo = max(0, (newest // PAGE) * PAGE - PAGE)
        if self._x_range is None or not self._x_range[0] <= newest < self._x_range[1]:
            self._set_x_range(lo, lo + HISTORY)

    def _record(self, pose: PoseFrame) -> None:
        conf = np.nan_to_num(np.asarray(pose.stage_conf, dtype=np.float64))
        self._ensure_curves(len(conf))
        restart = bool(getattr(pose, "restart", False))
        if self._frame_count:
            self._record_known(pose.index, conf, restart)
        else:
            self._record_live(pose.index, conf, restart)
        if not self.timeline_plot.isVisible():
            return
        peaks = np.clip(np.nan_to_num(pose.joint_peaks), 0, 1).astype(np.float32)
        joints = self._joints = len(peaks)
        width = self._frame_count or LIVE_TIMELINE
        if self._grid.shape != (joints, width):
            self._grid = np.full((joints, width), np.nan, np.float32)
        col = pose.index if self._frame_count else pose.index % width
        if 0 <= col < self._grid.shape[1]:
            self._grid[:, col] = peaks
        elif col >= 0:  # the header under-counted the frames: grow
            grown = np.full((joints, col + 1), np.nan, np.float32)
            grown[:, :self._grid.shape[1]] = self._grid
            grown[:, col] = peaks
            self._grid = grown
        self._col = col

    def _record_known(self, index: int, conf: np.ndarray, restart: bool) -> None:
        """A video or folder: one slot per frame; a restart (loop, seek) empties the previous pass."""
        if restart:
            self._y[:] = np.nan
        if index >= len(self._x):  # the header under-counted the frames: grow, and span them all
            grown = np.full((index + 1, self._y.shape[1]), np.nan)
            grown[:len(self._y)] = self._y
            self._x, self._y = np.arange(index + 1, dtype=np.float64), grown
            self._frame_count = index + 1
            self._set_x_range(0, index)
        if index >= 0:
            self._y[index] = conf

    def _record_live(self, index: int, conf: np.ndarray, restart: bool) -> None:
        """A camera or unknown length: the last HISTORY results, a NaN row where frames are missing."""
        if restart:
            self._x, self._y = np.zeros(0), np.zeros((0, len(conf)))
        elif self._x.size and index != int(self._x[-1]) + 1:
            self._x = np.append(self._x, (self._x[-1] + index) / 2)
            self._y = np.vstack([self._y, np.full(len(conf), np.nan)])
        self._x = np.append(self._x, index)[-HISTORY:]
        self._y = np.vstack([self._y, conf])[-HISTORY:]

    def _on_click(self, event) -> None:
        """A left click on either plot of a video or folder: seek to the frame under it."""
        if self._frame_count is None or event.button() != pg.QtCore.Qt.MouseButton.LeftButton:
            return
        for plot in (self.timeline_plot, self.stage_plot):
            vb = plot.getViewBox()
            if plot.isVisible() and vb.sceneBoundingRect().contains(event.scenePos()):
                x = vb.mapSceneToView(event.scenePos()).x()
                nearest = math.floor(x) if plot is self.timeline_plot else round(x)  # a column / a point
                frame = min(max(0, nearest), self._frame_count - 1)
                self.seekRequested.emit(int(frame))
                return
