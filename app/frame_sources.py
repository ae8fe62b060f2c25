"""What the capture thread reads from: files (video, image, image folder) through `cpm_core.sources`' reader,
and live cameras, behind one interface.

Opening validates the source by decoding its first frame, so a bad file is reported when the user picks it
(and the previous source keeps playing) rather than as a silent black view later. No Qt here: the capture
thread owns these objects and only it calls them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cpm_core.sources import Frame, SourceError, open_media

CAMERA_PREFIX = "camera:"
FOLDER_FPS = 2.0  # an image folder plays as a slide show
CAMERA_FAILURES_BEFORE_LOST = 30  # about a second of failed reads at 30 fps


class FrameError(SourceError):
    """One frame could not be read, but the source goes on (a corrupt image inside a folder)."""


@dataclass
class SourceInfo:
    kind: str  # 'video', 'image', 'folder', 'camera'
    label: str  # what the user picked: a path or 'camera:N'
    fps: float
    frame_count: int | None  # None for live sources; a hint for videos
    seekable: bool


class FrameSource:
    """A readable source of BGR frames with an index."""

    info: SourceInfo

    def read(self) -> tuple[int, np.ndarray] | None:
        """The next (index, frame), or None at the end. Raises FrameError for a skippable bad frame and
        SourceError when the source itself failed (camera unplugged)."""
        raise NotImplementedError

    def seek(self, index: int) -> None:
        """Make `index` the next frame read (best effort for videos)."""

    def end_note(self) -> str | None:
        """After read() returned None: a warning about how the source ended (a video shorter than its header
        says), or None for a normal end."""
        return None

    def close(self) -> None:
        pass


class FileFrameSource(FrameSource):
    """A video, an image or an image folder, read by `cpm_core.sources` (the one reader of frames from files).
    Opening decodes the first frame (a folder: its first readable image), so a useless source fails here."""

    def __init__(self, path: str | Path):
        self._reader = open_media(path)
        self._pending: Frame | None = None
        try:
            first = self._reader.read()  # a frameless video or an unreadable image raises SourceError
            if self._reader.kind == "folder":  # at least one image must decode, or the folder is useless
                first_error = None
                while first is not None and first.error:
                    first_error, first = first.error, self._reader.read()
                if first is None:
                    raise SourceError(f"{path}: none of its {self._reader.frame_count} images can be read "
                                      f"({first_error})")
                self._reader.seek(0)  # a slide show starts at the first file, readable or not
            else:
                self._pending = first
        except BaseException:
            self._reader.close()
            raise
        kind = self._reader.kind
        fps = {"video": self._reader.fps, "folder": FOLDER_FPS}.get(kind, 1.0)
        self.info = SourceInfo(kind, str(path), fps or 30.0, self._reader.frame_count, True)

    def read(self) -> tuple[int, np.ndarray] | None:
        frame = self._pending if self._pending is not None else self._reader.read()
        self._pending = None
        if frame is None:
            return None
        if frame.error:
            raise FrameError(frame.error)
        return frame.index, frame.image

    def seek(self, index: int) -> None:
        self._pending = None
        self._reader.seek(max(0, index))

    def end_note(self) -> str | None:
        return self._reader.end_note()

    def close(self) -> None:
        self._reader.close()


class CameraFrameSource(FrameSource):
    def __init__(self, index: int):
        self._cap = cv2.VideoCapture(index)
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(f"camera {index}: not available (missing, or used by another program)")
        ok, frame = self._cap.read()
        if not ok or frame is None:
            self._cap.release()
            raise SourceError(f"camera {index}: opened but delivers no frames")
        self._pending: np.ndarray | None = frame
        self._count = 0
        fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        self.info = SourceInfo("camera", f"{CAMERA_PREFIX}{index}", fps if 1 <= fps <= 240 else 30.0, None, False)

    def read(self) -> tuple[int, np.ndarray] | None:
        if self._pending is not None:
            frame, self._pending = self._pending, None
        else:
            failures = 0
            while True:
                ok, frame = self._cap.read()
                if ok and frame is not None:
                    break
                failures += 1
                if failures >= CAMERA_FAILURES_BEFORE_LOST:
                    raise SourceError(f"{self.info.label}: stopped delivering frames (unplugged?)")
                time.sleep(0.03)
        i = self._count
        self._count += 1
        return i, frame

    def close(self) -> None:
        self._cap.release()


def open_source(spec: str | Path) -> FrameSource:
    """Open a path (video, image, folder) or 'camera:N'. Raises SourceError with a one-line reason."""
    s = str(spec)
    if s.startswith(CAMERA_PREFIX):
        try:
            index = int(s[len(CAMERA_PREFIX):])
        except ValueError:
            raise SourceError(f"{s}: camera index must be a number") from None
        return CameraFrameSource(index)
    p = Path(s)
    if not p.exists():
        raise SourceError(f"{p}: no such file or folder")
    return FileFrameSource(p)
