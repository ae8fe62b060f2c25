"""The status bar's live readout: capture, inference and display rates, drops, subjects, recording.

Updated by its own timer four times a second (not per frame: a label changing at video rate re-lays out the
status bar in the GUI thread for nothing anyone can read)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel

from app.viewer.display import ViewDisplay
from cpm_core.live_pipeline import LivePipeline

INTERVAL_MS = 250


def rate(times: list[float]) -> float:
    """Events per second over a list of perf_counter times (0 with fewer than two)."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0


DROPPED_TIP = ("dropped: frames of this source (counted since it was opened, loops included) that the model had no "
               "time for: in real time a newer frame replaced them before the model took them, so they were never "
               "processed, shown or recorded. View > Process every frame (and recording) makes it 0.")


class Readout(QLabel):
    """Rates over the last ~2 s: capture (frames offered to the model), display (frames drawn); the frames this
    source dropped (the pipeline counts for its whole life; `new_source` sets the baseline)."""

    def __init__(self, pipeline: Callable[[], LivePipeline], display: ViewDisplay, recording: Callable[[], bool]):
        super().__init__("capture – fps | inference – ms | display – fps")
        self._pipeline, self._display, self._recording = pipeline, display, recording
        self._capture_marks: deque[tuple[float, int]] = deque(maxlen=8)  # 2 s of ticks
        self._dropped_before = 0  # the pipeline's drops before the current source was opened
        self.setToolTip(DROPPED_TIP)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.update_text)
        self.timer.start(INTERVAL_MS)

    def new_source(self) -> None:
        """A source was opened: its drops count from 0 (they used to add up over every source, 1055 in an hour)."""
        self._dropped_before = self._pipeline().dropped
        self.update_text()

    def pause(self) -> None:
        """Stop updating (a test counting layout requests, a window closing)."""
        self.timer.stop()

    def resume(self) -> None:
        self.timer.start(INTERVAL_MS)

    def update_text(self) -> None:
        now = time.perf_counter()
        pipeline = self._pipeline()
        self._capture_marks.append((now, pipeline.captured))
        marks = list(self._capture_marks)
        span = marks[-1][0] - marks[0][0]
        cap_fps = (marks[-1][1] - marks[0][1]) / span if span > 0 else 0.0
        draws = list(self._display.draw_times)
        disp_fps = 0.0 if not draws or now - draws[-1] > 1.0 else rate(draws)
        pose = self._display.last_drawn
        ms = f"{pose.timings.get('model', 0):.1f}" if pose else "–"
        self.setText(f"capture {cap_fps:.1f} fps | inference {ms} ms | display {disp_fps:.1f} fps | "
                     f"dropped {pipeline.dropped - self._dropped_before}"
                     + (f" | subjects {len(pose.subjects)}" if pose and pose.detecting else "")
                     + (" | REC" if self._recording() else ""))
