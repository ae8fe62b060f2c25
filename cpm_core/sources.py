"""The one reader of frames from files: single images, image folders and videos, with OpenCV.

Everything in the project that reads frames from a file goes through here: `cpm infer`, `cpm suggest`, frame
extraction for annotation projects, the app's file sources, the recorder's recovery and the benches (a live
camera is the app's, `app/frame_sources.py`). `open_media(path)` gives a `MediaReader` for any of the three
kinds; it reads sequentially, one frame in memory at a time, each frame a `Frame` with its index.

Video headers lie (frame counts, seekability), so videos are read in order and the header's count is a hint
(`frame_count`; `end_note` says when clearly fewer frames decoded). A source that cannot be used is a
`SourceError` naming the file (a missing file, a folder without images, an unopenable or frameless video, an
unreadable single image), never a None frame further down; one unreadable image inside a folder is a `Frame`
with `error` set and no image, so a bad file does not end the folder.
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
    index: int  # the frame's position in its source (a folder's file order, a video's decode order)
    image: np.ndarray | None  # BGR uint8; None when this frame could not be read (then `error` says why)
    source: str  # the file the frame came from (a folder's image, else the source itself)
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


class MediaReader:
    """Sequential frames of one file source. `index` is the index the next `read()` returns; `fps` is a video's
    rate (None for stills); `frame_count` is exact for an image or a folder and the header's hint for a video
    (None when the header has none)."""

    kind: str
    path: Path
    fps: float | None = None
    frame_count: int | None = None
    index: int = 0

    def read(self) -> Frame | None:
        """The next frame, or None at the end."""
        raise NotImplementedError

    def skip(self) -> bool:
        """Step over the next frame without decoding it; False at the end."""
        if self.frame_count is None or self.index >= self.frame_count:
            return False
        self.index += 1
        return True

    def seek(self, index: int) -> None:
        """Make `index` the next frame read (clipped to the source; best effort for videos)."""
        self.index = int(np.clip(index, 0, max(0, (self.frame_count or 1) - 1)))

    def frames(self, every: int = 1) -> Iterator[Frame]:
        """Every `every`-th frame (indexes 0, every, 2 * every, ...) from the current position to the end; the
        frames between are skipped without decoding."""
        while True:
            if every > 1 and self.index % every:
                if not self.skip():
                    return
                continue
            frame = self.read()
            if frame is None:
                return
            yield frame

    def end_note(self) -> str | None:
        """Once the frames have ended: a warning about how (a video shorter than its header says), or None."""
        return None

    def close(self) -> None:
        pass

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def __enter__(self) -> MediaReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ImageReader(MediaReader):
    """One image as a source of one frame (decoded on the first read, kept for a seek back)."""

    kind = "image"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.frame_count = 1
        self._image: np.ndarray | None = None

    def read(self) -> Frame | None:
        if self.index > 0:
            return None
        if self._image is None:
            self._image = read_image(self.path)  # an unreadable single image is the source's failure
        self.index = 1
        return Frame(0, self._image, str(self.path))


class FolderReader(MediaReader):
    """The images of a folder in name order; an unreadable one is a Frame with its reason, and reading goes on."""

    kind = "folder"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.files = folder_images(path)
        self.frame_count = len(self.files)

    def read(self) -> Frame | None:
        if self.index >= len(self.files):
            return None
        i, f = self.index, self.files[self.index]
        self.index += 1
        try:
            return Frame(i, read_image(f), str(f))
        except SourceError as exc:
            return Frame(i, None, str(f), str(exc))


class VideoReader(MediaReader):
    """A video read in order, with the file's frame rate and its header's frame count (a hint only). A video
    that opens but yields no frame at all raises SourceError on the first read."""

    kind = "video"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such file")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(f"{self.path}: cannot open as a video (corrupt or unsupported codec)")
        fps = float(self._cap.get(cv2.CAP_PROP_FPS)) or 30.0
        self.fps = fps if np.isfinite(fps) and 0 < fps <= 1000 else 30.0
        self.frame_count = max(0, int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))) or None
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.index = 0
        self._started = False  # a frame was ever grabbed: an end before that means a video without frames

    def _grab(self) -> bool:
        if not self._cap.grab():
            if not self._started:
                raise SourceError(f"{self.path}: video has no decodable frames")
            return False
        self._started = True
        return True

    def read(self) -> Frame | None:
        if not self._grab():
            return None
        i = self.index
        self.index += 1
        ok, image = self._cap.retrieve()
        if not ok or image is None:
            return Frame(i, None, str(self.path), f"{self.path}: frame {i} could not be decoded")
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return Frame(i, image, str(self.path))

    def skip(self) -> bool:
        if not self._grab():
            return False
        self.index += 1
        return True

    def end_note(self) -> str | None:
        """A one-line warning when clearly fewer frames decoded than the header says (a truncated or damaged
        file plays silently short otherwise), or None."""
        hint = self.frame_count
        if hint and hint - self.index > truncation_slack(hint):
            return (f"{self.path}: only {self.index} of the {hint} frames its header lists could be decoded "
                    "(truncated or damaged file?)")
        return None

    def seek(self, index: int) -> None:
        """Best effort: containers with bad indexes may land elsewhere; `index` is updated to the truth."""
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, max(0, index))
        self.index = int(self._cap.get(cv2.CAP_PROP_POS_FRAMES))

    def close(self) -> None:
        self._cap.release()


def open_media(path: str | Path) -> MediaReader:
    """The reader for an image, an image folder or a video (by `classify`). Raises SourceError when the source
    cannot be opened: a missing video or folder, a folder without images, a video OpenCV cannot open (a missing
    or unreadable single image fails on its read)."""
    kind = classify(path)
    if kind == "folder":
        return FolderReader(path)
    if kind == "image":
        return ImageReader(path)
    return VideoReader(path)
