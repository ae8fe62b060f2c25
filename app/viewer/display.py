"""ViewDisplay: the four views in a stack, following `ViewerSettings`, painting the newest PoseFrame at a bounded rate.

Every result is delivered (counted, recorded in the confidence plots); the current view is painted with the newest
one at most every `paint_interval` (the screen's refresh, or the source's frame interval when longer). Painting
100 results a second on a 60 Hz screen showed nothing more and took the CPU the model needed (bench/pipeline.py).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QStackedWidget

from app.frame_sources import SourceInfo
from app.plots import ConfidencePlotsWidget
from app.viewer.settings import VIEWS, ViewerSettings
from app.views import VIEW_CLASSES, PoseView
from cpm_core.pose_frame import PoseFrame

VIEW_ORDER = VIEWS


def paint_interval_for(screen_interval: float, info: SourceInfo | None) -> float:
    """Seconds between view paints: the screen's refresh interval, or a video's or camera's frame interval when
    that is longer. Processing every frame of a 30 fps clip at 100 frames/s, a paint per screen refresh showed
    frames no one can follow and took the GUI thread's time from the pipeline; at the source's own rate the
    preview still moves as smoothly as the footage itself. Images, folders and unknown rates: the screen's."""
    fps = info.fps if info is not None and info.kind in ("video", "camera") else 0.0
    return max(screen_interval, 1.0 / fps) if 5.0 <= fps <= 240.0 else screen_interval


def screen_refresh_interval() -> float:
    """Seconds per refresh of the primary screen (60 Hz when it reports nothing plausible)."""
    screen = QGuiApplication.primaryScreen()
    rate = screen.refreshRate() if screen is not None else 0.0
    return 1.0 / (rate if 20.0 <= rate <= 240.0 else 60.0)


class ViewDisplay(QObject):
    """Owns the views and the stack that shows one of them; `deliver` is where results enter the GUI."""

    frameDisplayed = Signal(int)  # frames painted so far for the current source
    smallSubject = Signal()  # a body model sees no person big enough to pose (once per source)

    def __init__(self, settings: ViewerSettings, plots: ConfidencePlotsWidget, parent: QObject | None = None):
        super().__init__(parent)
        self.settings = settings
        self.plots = plots
        self.views: dict[str, PoseView] = {name: cls() for name, cls in VIEW_CLASSES.items()}
        self.stack = QStackedWidget()
        for name in VIEW_ORDER:
            self.stack.addWidget(self.views[name])
            self.views[name].subjectClicked.connect(lambda sid: setattr(self.settings, "selected_subject", sid))
        self.screen_interval = screen_refresh_interval()
        self.paint_interval = self.screen_interval
        self.generation = 0
        self.displayed = 0  # frames painted for the current source
        self.delivered = 0  # results that reached the GUI for the current source (each one recorded)
        self.last_draw = 0.0  # perf_counter of the last paint; the next waits for paint_interval after it
        self.last_drawn: PoseFrame | None = None
        self.draw_times: deque[float] = deque(maxlen=60)
        self._latest: PoseFrame | None = None
        self._draw_scheduled = False
        self._hinted_generation: int | None = None
        for name in ("threshold", "autoscale", "selected_subject"):
            settings.subscribe(name, lambda v, n=name: self._set_on_views(n, v), now=True)
        settings.subscribe("autoscale", plots.set_autoscale, now=True)
        settings.subscribe("tracker_mode", self.views["tracker"].set_mode, now=True)
        settings.subscribe("view", self._show_view, now=True)

    @property
    def current_view(self) -> PoseView:
        return self.views[self.settings.view]

    def _set_on_views(self, name: str, value) -> None:
        for v in self.views.values():
            setattr(v, name, value)
        self.current_view.redraw()

    def _show_view(self, name: str) -> None:
        self.stack.setCurrentWidget(self.views[name])
        if self.last_drawn is not None:
            self.views[name].show_pose(self.last_drawn)

    def new_source(self, generation: int, info: SourceInfo) -> None:
        """Forget the previous source's results; results of older generations are ignored from now on."""
        self.generation = generation
        self.paint_interval = paint_interval_for(self.screen_interval, info)
        self.displayed = 0
        self.delivered = 0
        self._latest = None
        self.settings.selected_subject = None  # ids start again at 1 with the new source

    def subject_at(self, x: float, y: float) -> int | None:
        """The id of the subject under a frame point of the last drawn frame (None: no subject there)."""
        return self.last_drawn.subject_at(x, y) if self.last_drawn is not None else None

    def deliver(self, pose: PoseFrame, paint_later: Callable[[int, Callable], None] = QTimer.singleShot) -> None:
        """Take one result: count and plot it, and schedule a paint of the newest result."""
        if pose.generation != self.generation:
            return  # from the previous source
        if pose.small_subject and self._hinted_generation != self.generation:
            self._hinted_generation = self.generation
            self.smallSubject.emit()
        self.delivered += 1
        self.plots.add(pose)
        self._latest = pose
        if not self._draw_scheduled:
            self._draw_scheduled = True
            wait = self.last_draw + self.paint_interval - time.perf_counter()
            paint_later(max(0, int(wait * 1000)), self._draw_latest)

    def _draw_latest(self) -> None:
        self._draw_scheduled = False
        pose, self._latest = self._latest, None
        if pose is None:
            return
        self.last_draw = time.perf_counter()
        self.current_view.show_pose(pose)
        self.last_drawn = pose
        self.draw_times.append(time.perf_counter())
        self.displayed += 1
        self.frameDisplayed.emit(self.displayed)
