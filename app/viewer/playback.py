"""PlaybackBar: the transport toolbar (start, step, play/pause, seek bar, frame label) over a SourceSession.

The seek bar and frame label follow playback at most ~15 times a second: updating them for every frame at
100 frames/s re-laid the toolbar out in the GUI thread. The label's size is fixed to its widest text for the source,
so a new number repaints the label only, never the window's layout.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QLabel, QSizePolicy, QSlider, QToolBar

from app.frame_sources import SourceInfo
from app.viewer.actions import ActionFactory
from app.viewer.session import SourceSession

POSITION_MS = 66


class PlaybackBar(QToolBar):
    """Transport controls; `show_position` is the public seam the label and slider are updated through."""

    def __init__(self, session: SourceSession, actions: ActionFactory):
        super().__init__("Playback")
        self.setObjectName("playback_toolbar")
        self.session = session
        self.play_action = actions("Play/Pause", session.toggle_play, "Space")
        self.step_back_action = actions("◀ Step", lambda: session.step(-1), "Left")
        self.step_fwd_action = actions("Step ▶", lambda: session.step(1), "Right")
        self.rewind_action = actions("Start", lambda: session.seek(0), "Home")
        self.play_action.setIconText("Play/Pause")
        for act in (self.rewind_action, self.step_back_action, self.play_action, self.step_fwd_action):
            self.addAction(act)
        self.seek_slider = QSlider(Qt.Orientation.Horizontal)
        self.seek_slider.setMinimumWidth(160)  # it takes the toolbar's spare room; Snapshot/Record stay in view
        self.seek_slider.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.seek_slider.sliderMoved.connect(session.seek)
        self.addWidget(self.seek_slider)
        self.position_label = QLabel(" – ")
        self._fit_position_label(None)
        self.addWidget(self.position_label)
        self._position: int | None = None
        self._shown_position: int | None = None
        self._frame_count: int | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(POSITION_MS)
        self._timer.timeout.connect(lambda: self.show_position(self._position))
        session.positionChanged.connect(self.follow)
        session.opened.connect(lambda info, _gen: self.set_source(info))

    def set_source(self, info: SourceInfo) -> None:
        self._shown_position = None
        self._frame_count = info.frame_count
        self.seek_slider.setEnabled(info.seekable and (info.frame_count or 0) > 1)
        self.seek_slider.setRange(0, max(0, (info.frame_count or 1) - 1))
        self.seek_slider.setValue(0)
        self._fit_position_label(info.frame_count)

    def follow(self, index: int) -> None:
        """A frame was handed on: show it now, or when the label's timer allows (the latest always wins)."""
        self._position = index
        if not self._timer.isActive():
            self.show_position(index)
            self._timer.start()

    def _fit_position_label(self, frame_count: int | None) -> None:
        """Fix the frame label's size to its widest text for this source. A label whose width may change asks
        its window for a new layout on every setText: during playback that re-laid out the main window ~10
        times a second (0.5 ms each, plus an animation object per toolbar and dock), CPU the model needed
        (bench/pipeline.py)."""
        digits = max(5, len(str(frame_count or 0)))
        widest = " " + "8" * digits + " / " + "8" * digits
        metrics = self.position_label.fontMetrics()
        self.position_label.setFixedSize(max(110, metrics.horizontalAdvance(widest) + 8),
                                         max(self.position_label.sizeHint().height(), metrics.height()))

    def show_position(self, index: int | None) -> None:
        """Show frame `index` in the seek bar (unless the user is dragging it) and the label."""
        if index is None or index == self._shown_position:
            return
        self._shown_position = index
        if not self.seek_slider.isSliderDown():
            self.seek_slider.blockSignals(True)
            self.seek_slider.setValue(index)
            self.seek_slider.blockSignals(False)
        count = self._frame_count
        self.position_label.setText(f" {index + 1} / {count}" if count else f" {index + 1}")
