"""What the capture thread reads from: one small class per source kind behind one interface.

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

from cpm_core.sources import SourceError, VideoReader, classify, folder_images, read_image

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


class ImageFrameSource(FrameSource):
    def __init__(self, path: str | Path):
        self._image = read_image(path)
        self._done = False
        self.info = SourceInfo("image", str(path), 1.0, 1, True)

    def read(self) -> tuple[int, np.ndarray] | None:
        if self._done:
            return None
        self._done = True
        return 0, self._image

    def seek(self, index: int) -> None:
        self._done = False


class FolderFrameSource(FrameSource):
    def __init__(self, path: str | Path):
        self._files = folder_images(path)
        self._next = 0
        first_error = None
        for f in self._files:  # at least one image must decode, or the folder is useless
            try:
                read_image(f)
                break
            except SourceError as exc:
                first_error = exc
        else:
            raise SourceError(f"{path}: none of its {len(self._files)} images can be read ({first_error})")
        self.info = SourceInfo("folder", str(path), FOLDER_FPS, len(self._files), True)

    def read(self) -> tuple[int, np.ndarray] | None:
        if self._next >= len(self._files):
            return None
        i = self._next
        self._next += 1
        try:
            return i, read_image(self._files[i])
        except SourceError as exc:
            raise FrameError(str(exc)) from exc

    def seek(self, index: int) -> None:
        self._next = int(np.clip(index, 0, len(self._files) - 1))

    def name_of(self, index: int) -> str:
        return self._files[index].name if 0 <= index < len(self._files) else ""


class VideoFrameSource(FrameSource):
    def __init__(self, path: str | Path):
        self._reader = VideoReader(path)
        first = self._reader.read()
        if first is None:
            self._reader.close()
            raise SourceError(f"{path}: video has no decodable frames")
        self._pending: np.ndarray | None = first
        count = self._reader.frame_count_hint or None
        self.info = SourceInfo("video", str(path), self._reader.fps, count, True)

    def read(self) -> tuple[int, np.ndarray] | None:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return 0, frame
        index = self._reader.index
        frame = self._reader.read()
        return None if frame is None else (index, frame)

    def seek(self, index: int) -> None:
        self._pending = None
        self._reader.seek(max(0, index))

    def end_note(self) -> str | None:
        return self._reader.truncation_note()

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
    kind = classify(p)
    if kind == "folder":
        return FolderFrameSource(p)
    if kind == "image":
        return ImageFrameSource(p)
    return VideoFrameSource(p)
