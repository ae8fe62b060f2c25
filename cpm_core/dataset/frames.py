"""Pick frames of a video to label: evenly spaced, or one per cluster of look-alike frames (k-means).

Labelling every frame of a video wastes effort on near-duplicates; k-means on tiny grayscale thumbnails picks
frames that look different from each other. Videos are read sequentially, twice (scan, then save): container
headers can lie about the frame count (gesrec_hands.mp4 says 1090, 973 decode) and seeking is unreliable, so
neither is trusted.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from cpm_core.atomic_io import atomic_write_bytes
from cpm_core.dataset.imageinfo import encode_image
from cpm_core.sources import VideoReader

METHODS = ("uniform", "kmeans")


def _thumb(frame: np.ndarray, size: int) -> np.ndarray:
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA).reshape(-1)


def uniform_indices(num_frames: int, count: int) -> list[int]:
    """`count` frame indices at the centres of equal segments of the video (all frames when count >= n)."""
    if count >= num_frames:
        return list(range(num_frames))
    return sorted({int((i + 0.5) * num_frames / count) for i in range(count)})


def kmeans_indices(thumbs: np.ndarray, count: int, seed: int = 0) -> list[int]:
    """One frame per k-means cluster of the thumbnails: the frame nearest each centre (distinct frames)."""
    n = len(thumbs)
    if count >= n:
        return list(range(n))
    data = thumbs.astype(np.float32) / 255.0
    cv2.setRNGSeed(seed)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-4)
    _, _, centres = cv2.kmeans(data, count, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    chosen: list[int] = []
    taken = np.zeros(n, dtype=bool)
    for c in centres:
        d = ((data - c) ** 2).sum(axis=1)
        d[taken] = np.inf
        i = int(np.argmin(d))
        taken[i] = True
        chosen.append(i)
    return sorted(chosen)


def extract_frames(
    video: str | os.PathLike,
    out_dir: str | os.PathLike,
    count: int,
    method: str = "uniform",
    thumb_size: int = 32,
    seed: int = 0,
    quality: int = 95,
    progress: Callable[[str, int], None] | None = None,
) -> list[tuple[int, Path]]:
    """Save `count` frames of `video` as JPEGs `<stem>_<frame:06d>.jpg` in `out_dir`.

    `method` "uniform" spaces them evenly over the frames that actually decode; "kmeans" clusters 32x32
    (`thumb_size`) grayscale thumbnails and keeps the frame nearest each centre. `progress(phase, frames)` is
    called every 50 frames ("scan" then "save"). Returns [(frame index, path)] sorted by index.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    video = Path(video)
    if not video.is_file():
        raise FileNotFoundError(f"{video}: no such video file")
    thumbs, indices = [], []  # a thumbnail per decoded frame, and that frame's index in the video
    with VideoReader(video) as reader:  # cpm_core.sources: the one reader of frames
        for frame in reader:
            if frame.image is None:
                continue
            thumbs.append(_thumb(frame.image, thumb_size))
            indices.append(frame.index)
            if progress and frame.index % 50 == 0:
                progress("scan", frame.index)
    if not thumbs:
        raise ValueError(f"{video}: no frame could be decoded")
    if method == "uniform":
        wanted = uniform_indices(len(thumbs), count)
    else:
        wanted = kmeans_indices(np.stack(thumbs), count, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    todo = {indices[k] for k in wanted}
    saved: list[tuple[int, Path]] = []
    with VideoReader(video) as reader:
        for frame in reader:
            i = frame.index
            if progress and i % 50 == 0:
                progress("save", i)
            if i in todo and frame.image is not None:
                target = out / f"{video.stem}_{i:06d}.jpg"
                atomic_write_bytes(target, encode_image(frame.image, ".jpg", quality))
                saved.append((i, target))
                todo.discard(i)
                if not todo:
                    break
    return saved
