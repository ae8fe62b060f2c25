"""Frame sources for files: images, image folders and videos, read with OpenCV.

Video headers lie (frame counts, seekability), so readers go sequentially and treat the header count as a
hint. Every failure is a `SourceError` naming the file, never a None frame further down.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".flv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".gif"}


def truncation_slack(header_count: int) -> int:
    """Frames a video may come up short of its header's count without a warning: containers that store no
    count (WebM, some AVIs) estimate it from duration x rate, which rounds; 1 % (at least one frame) covers that,
    while a cut-off file (52 of 202) is far beyond it."""
    return max(1, header_count // 100)


class SourceError(OSError):
    """A source that cannot be opened or read."""


@dataclass
class Frame:
    index: int
    image: np.ndarray | None  # BGR uint8; None when this one file of a folder could not be read
    source: str  # the file the frame came from
    error: str | None = None


def classify(path: str | Path) -> str:
    """'image', 'folder' or 'video' (by suffix; unknown suffixes are tried as video)."""
    p = Path(path)
    if p.is_dir():
        return "folder"
    suffix = p.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    return "video"


def read_image(path: str | Path) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise SourceError(f"{p}: no such file")
    data = np.fromfile(str(p), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise SourceError(f"{p}: not a readable image (corrupt or unsupported format)")
    return img


def folder_images(path: str | Path) -> list[Path]:
    files = sorted(f for f in Path(path).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    if not files:
        raise SourceError(f"{path}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


class VideoReader:
    """Sequential video reading with the file's frame rate and a header frame count (a hint only)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such file")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise SourceError(f"{self.path}: cannot open as a video (corrupt or unsupported codec)")
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS)) or 30.0
        if not np.isfinite(self.fps) or self.fps <= 0 or self.fps > 1000:
            self.fps = 30.0
        self.frame_count_hint = max(0, int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.index = 0

    def read(self) -> np.ndarray | None:
        """The next frame, or None at the end of the stream."""
        ok, frame = self._cap.read()
        if not ok or frame is None:
            return None
        self.index += 1
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        return frame

    def truncation_note(self) -> str | None:
        """Once the stream has ended: a one-line warning when clearly fewer frames decoded than the header says
        (a truncated or damaged file plays silently short otherwise), or None."""
        hint = self.frame_count_hint
        if hint and hint - self.index > truncation_slack(hint):
            return (f"{self.path}: only {self.index} of the {hint} frames its header lists could be decoded "
                    "(truncated or damaged file?)")
        return None

    def seek(self, index: int) -> bool:
        """Best effort: containers with bad indexes may land elsewhere; `index` is updated to the truth."""
        ok = self._cap.set(cv2.CAP_PROP_POS_FRAMES, max(0, index))
        self.index = int(self._cap.get(cv2.CAP_PROP_POS_FRAMES))
        return bool(ok)

    def close(self) -> None:
        self._cap.release()

    def __iter__(self) -> Iterator[np.ndarray]:
        while (f := self.read()) is not None:
            yield f

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def iter_frames(path: str | Path) -> Iterator[Frame]:
    """Every frame of an image, folder or video. Raises SourceError if the source cannot be opened; a
    corrupt image inside a folder comes as a Frame with `error` set, so one bad file does not end the folder."""
    kind = classify(path)
    if kind == "image":
        yield Frame(0, read_image(path), str(path))
    elif kind == "folder":
        for i, f in enumerate(folder_images(path)):
            try:
                yield Frame(i, read_image(f), str(f))
            except SourceError as exc:
                yield Frame(i, None, str(f), str(exc))
    else:
        with VideoReader(path) as v:
            first = v.read()
            if first is None:
                raise SourceError(f"{path}: video has no decodable frames")
            yield Frame(0, first, str(path))
            for i, frame in enumerate(v, start=1):
                yield Frame(i, frame, str(path))
