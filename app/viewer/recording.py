"""Snapshot and Record: the File menu's output actions and the recording's life cycle.

The recorder is written from the pipeline's post thread (encoding is too slow for the GUI thread); it draws joints
above the viewer's confidence threshold and follows that setting while recording (`Recorder.follow`).

A recording holds every source frame: real time is switched off while it runs (the capture waits for the model to
take each frame instead of the mailbox replacing frames the model had no time for; the View menu shows "Process
every frame" ticked) and back to what it was afterwards. Recordings used to skip frames silently (a JSON of 179
frames with gaps while the mp4 played at a constant 30 fps). Each row also names its source frame and time, so a
seek or a loop during a recording shows in the files. `cpm-studio --record` goes through the same action
(`record_to`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QFileDialog, QWidget

from app.recording import Recorder
from app.viewer.actions import ActionFactory
from app.viewer.settings import ViewerSettings
from cpm_core.live_pipeline import LivePipeline


class RecordingActions:
    """`snapshot_action` (Ctrl+S) and the checkable `record_action` (Ctrl+R); `recorder` while recording."""

    def __init__(self, parent: QWidget, settings: ViewerSettings, pipeline: LivePipeline, actions: ActionFactory,
                 grab_view: Callable[[], object], view_name: Callable[[], str], fps: Callable[[], float],
                 report_error: Callable[[str, bool], None], status: Callable[..., None]):
        self.parent, self.settings, self.pipeline = parent, settings, pipeline
        self._grab, self._view_name, self._fps = grab_view, view_name, fps
        self._report, self._status = report_error, status
        self.recorder: Recorder | None = None
        self._realtime_before: bool | None = None  # the user's real-time setting, back when the recording stops
        self._next: tuple[Path, float | None, int | None] | None = None  # a scripted recording's path, fps, frames
        self.snapshot_action = actions("Snapshot view to PNG…", lambda: self.snapshot(), "Ctrl+S")
        self.record_action = actions("Record video + keypoints…", self._on_toggled, "Ctrl+R", checkable=True)
        self.snapshot_action.setIconText("Snapshot")
        self.record_action.setIconText("Record")

    def snapshot(self, path: str | Path | None = None) -> Path | None:
        """Save the current view as a PNG (asks where when no path is given)."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self.parent, "Save snapshot", f"cpm-{self._view_name()}.png",
                                                  "PNG (*.png)")
            if not path:
                return None
        path = Path(path)
        if not self._grab().save(str(path), "PNG"):
            self._report(f"{path}: cannot write the snapshot", True)
            return None
        self._status(f"Snapshot saved to {path}", 5000)
        return path

    def record_to(self, path: str | Path, fps: float | None = None, frames: int | None = None) -> bool:
        """Start recording to `path` through the Record action itself (what Ctrl+R does, without the file dialog):
        for `cpm-studio --record`. `fps`: the source's rate when no source is open yet; `frames`: record at most
        this many (the frames a scripted run asked for, not the few more in flight when it stops)."""
        self._next = (Path(path), fps, frames)
        try:
            self.record_action.trigger()
        finally:
            self._next = None
        return self.recorder is not None

    def _on_toggled(self, on: bool) -> None:
        if on and self.recorder is None:
            if not self.start(None):
                self._show_checked(False)
        elif not on and self.recorder is not None:
            self.stop()

    def _show_checked(self, on: bool) -> None:
        with QSignalBlocker(self.record_action):
            self.record_action.setChecked(on)

    def start(self, path: str | Path | None) -> bool:
        """Record the annotated video and keypoints of every processed frame to `path` (.mp4/.json/.csv)."""
        estimator = self.pipeline.estimator
        if estimator is None:
            self._report("no model loaded yet", True)
            return False
        fps = limit = None
        if path is None and self._next is not None:
            path, fps, limit = self._next
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self.parent, "Record to", "cpm-recording.mp4", "MP4 video (*.mp4)")
            if not path:
                return False
        try:
            rec = Recorder(path, estimator.card.skeleton, fps or self._fps(), self.settings.threshold)
            rec.limit = limit
        except OSError as exc:
            self._report(f"cannot record: {exc}", True)
            return False
        rec.follow(self.settings)
        self._realtime_before = self.settings.realtime
        self.settings.realtime = False  # every source frame through the model, none replaced in the mailbox
        self.recorder = rec
        self.pipeline.set_recorder(rec)
        self._show_checked(True)
        self._status(f"Recording every frame to {rec.video_path} (real time is off while recording)", 5000)
        return True

    def stop(self) -> Recorder | None:
        rec, self.recorder = self.recorder, None
        if rec is None:
            return None
        self.pipeline.set_recorder(None)
        rec.unfollow()
        if self._realtime_before is not None and not self.settings.realtime:  # unless the user changed it since
            self.settings.realtime = self._realtime_before
        self._realtime_before = None
        self._show_checked(False)
        try:
            rec.close()
        except OSError as exc:  # a full disk: the message says where the recorded part stays
            self._report(str(exc), True)
            return rec
        self._status(f"Recorded {rec.frames_written} frames to {rec.video_path} (+ .json, .csv)", 8000)
        return rec
