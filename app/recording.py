"""Recording a session: the annotated video plus every processed frame's keypoints as JSON and CSV.

Written from the inference thread (encoding a frame is too slow for the GUI thread). Only frames the model
processed are recorded, so with a slow model the video holds fewer frames than the source; each row keeps the
source frame index so the keypoints still line up with the original.

The writing itself is `cpm_core.recorder.PoseRecorder` (no Qt): while recording it keeps closed one-second
video segments and flushed keypoint logs, so a crash of the app loses at most the last second, and
`python -m cpm_core.recorder NAME.mp4` recovers the rest. Memory stays flat however long the recording.
"""

from __future__ import annotations

from cpm_core.recorder import PoseRecorder, RecordingError, recover_recording

__all__ = ["Recorder", "RecordingError", "recover_recording"]


class Recorder(PoseRecorder):
    """Writes `<stem>.mp4`, `<stem>.json` and `<stem>.csv` for the video path `path`."""

    def write(self, frame_bgr, pose) -> None:
        """Add one processed frame (a PoseFrame from the worker: its shown keypoints and source index)."""
        self.add(frame_bgr, pose.shown, pose.index)
