"""Recording a session: the annotated video plus every processed frame's keypoints as JSON and CSV.

Written from the inference thread (encoding a frame is too slow for the GUI thread). Only frames the model
processed are recorded; the app switches real time off while recording (`app.viewer.recording`), so every frame
of a video or folder is processed and recorded. Each row keeps the source frame index and time, so the keypoints
line up with the original and a seek, a loop or a camera's missed frames show as jumps in `frame`.

The writing itself is `cpm_core.recorder.PoseRecorder` (no Qt): while recording it keeps closed one-second
video segments and flushed keypoint logs, so a crash of the app loses at most the last second, and
`python -m cpm_core.recorder NAME.mp4` recovers the rest. Memory stays flat however long the recording.
"""

from __future__ import annotations

from cpm_core.recorder import PoseRecorder, RecordingError, recover_recording

__all__ = ["Recorder", "RecordingError", "recover_recording"]


class Recorder(PoseRecorder):
    """Writes `<stem>.mp4`, `<stem>.json` and `<stem>.csv` for the video path `path`."""

    _unfollow = None
    limit: int | None = None  # record at most this many frames (a scripted run's --frames); None: no limit
    _last_index: int | None = None

    def follow(self, settings) -> None:
        """Draw joints above `settings.threshold` (a `ViewerSettings`) from now on, as the views do, also when the
        user moves the threshold while recording (a float is replaced atomically: the post thread reads it)."""
        self.unfollow()
        self.threshold = settings.threshold
        self._unfollow = settings.subscribe("threshold", lambda t: setattr(self, "threshold", t))

    def unfollow(self) -> None:
        if self._unfollow is not None:
            self._unfollow()
            self._unfollow = None

    def write(self, frame_bgr, pose) -> None:
        """Add one processed frame (a `cpm_core.pose_frame.PoseFrame`: its shown keypoints and source index; its
        time in the source is index / fps)."""
        if pose.index == self._last_index and not pose.restart:
            return  # the same frame shown again with new settings (a paused frame after K or D): recorded once
        if self.limit is None or self.frames_written < self.limit:
            self._last_index = pose.index
            self.add(frame_bgr, pose.shown, pose.index)
