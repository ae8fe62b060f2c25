"""Writers for pose output that survive a crash and keep memory flat: the recorder of annotated video plus
keypoints (used by the app's Record), and the building blocks `cpm infer` writes its outputs with.

Why: an mp4 is unreadable until its trailer ("moov atom") is written, so a recording whose process died lost
its whole video, and a keypoint JSON kept in memory until the end was lost with it (and grew ~7 MB a minute).
`PoseRecorder` therefore writes, while recording `NAME.mp4`, a work folder `NAME.recording/` holding

- `segment-000000.mp4`, `segment-000001.mp4`, ...: the annotated video in closed (complete, readable) pieces
  of at most one second of footage (`fps` frames) or one second of wall time, whichever comes first;
- `keypoints.jsonl`: a header line (skeleton, fps, keypoint format), then one line per frame (`frame`: the source
  frame's index, `time`: its time in the source in seconds, `keypoints`), flushed per frame;
- `keypoints.csv`: the same keypoints as CSV rows, flushed per frame;
- `whole.partial.mp4`: the whole video as one file, complete only once closed.

A clean `close()` moves `whole.partial.mp4` to `NAME.mp4`, streams the lines into `NAME.json` (the document the
app always wrote: skeleton, fps, keypoint_format, frames) and `keypoints.csv` to `NAME.csv`, then removes the work
folder. After a kill (SIGKILL, power cut, segfault) only the open segment is lost -- at most one second of
footage -- and `recover_recording(NAME.mp4)` (or `python -m cpm_core.recorder NAME.mp4`) joins the closed segments
into `NAME.mp4` and the lines into `NAME.json` and `NAME.csv`. The keypoint files may hold up to one segment more
frames than the salvaged video; both are in recording order, so the n-th video frame is the n-th keypoint row.

Every row names its source frame and time, so a recording that does not hold every source frame (a seek, a loop
starting over, a live camera the model could not keep up with) says where its gaps are; the app records with
real time off, so a video or folder is recorded frame by frame without gaps. Confidences are clipped to [0, 1]
(`cpm_core.pose_frame.clip_confidence`).

Encoding each frame twice (segment and whole file) costs about 2 ms a frame at 640x480; the alternative, joining
segments on close, would re-encode the whole recording while the user waits.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cpm_core.atomic_io import atomic_output
from cpm_core.render import draw_pose
from cpm_core.sources import SourceError, VideoReader

SEGMENT_SECONDS = 1.0
WORK_SUFFIX = ".recording"
KEYPOINT_FORMAT = ["x", "y", "confidence"]
FOURCC = "mp4v"


class RecordingError(OSError):
    """A recording that cannot be started, written or finished; the message names the file."""


class _Aborted(Exception):
    """Thrown into `atomic_output` to make it delete its temporary file."""


class _AtomicFile:
    """`atomic_output` held open across calls: `commit()` renames the temporary file into place, `abort()`
    removes it. Streaming writers need this because their document is built over many calls."""

    def __init__(self, path: str | os.PathLike):
        self._cm = atomic_output(path)
        self.tmp: Path = self._cm.__enter__()

    def commit(self) -> None:
        self._cm.__exit__(None, None, None)

    def abort(self) -> None:
        with contextlib.suppress(_Aborted):
            self._cm.__exit__(_Aborted, _Aborted(), None)


def _json_number(v: float, digits: int) -> float | None:
    """JSON has no NaN: a hidden or unknown coordinate is written as null."""
    return round(float(v), digits) if math.isfinite(v) else None


def keypoint_rows(keypoints: np.ndarray, digits: int = 3) -> list[list[float | None]]:
    """(J, 3) keypoints as JSON-ready rows, non-finite values as null, confidences clipped to [0, 1]."""
    kp = np.array(keypoints, dtype=np.float64, copy=True)
    kp[:, 2] = np.clip(kp[:, 2], 0.0, 1.0)
    return [[_json_number(v, digits) for v in row] for row in kp]


class JsonStream:
    """One JSON object with a list field `key` written item by item, so memory stays flat for any number of
    items. The document goes to a temporary file beside `path` and is renamed into place by `close(ok=True)`:
    a reader never sees half a document and an existing file is replaced only by a complete one."""

    def __init__(self, path: str | os.PathLike, head: dict[str, Any], key: str):
        self.path = Path(path)
        self._file = _AtomicFile(self.path)
        try:
            self._fh = open(self._file.tmp, "w", encoding="utf-8")
            self._fh.write(json.dumps(head)[:-1] + (", " if head else "") + json.dumps(key) + ": [")
        except OSError:
            self._file.abort()
            raise
        self.count = 0
        self._closed = False

    def add(self, item: Any) -> None:
        self._fh.write((", " if self.count else "") + json.dumps(item))
        self.count += 1

    def close(self, ok: bool = True, tail: dict[str, Any] | None = None) -> None:
        """Finish and rename into place (`ok`), or drop the temporary file. `tail` adds fields after the list."""
        if self._closed:
            return
        self._closed = True
        try:
            if ok:
                self._fh.write("]" + "".join(f", {json.dumps(k)}: {json.dumps(v)}" for k, v in (tail or {}).items())
                               + "}")
            self._fh.close()
        except OSError:
            self._file.abort()
            raise
        if ok:
            self._file.commit()
        else:
            self._file.abort()


class VideoFile:
    """An mp4 written under a temporary name and renamed to `path` by `close(ok=True)`, so an interrupted
    writer never leaves a truncated file that looks finished. Opened on the first frame (its size is the
    video's; later frames of another size, as in a folder of images, are resized to it)."""

    def __init__(self, path: str | os.PathLike, fps: float, tmp: str | os.PathLike | None = None):
        self.path = Path(path)
        self.tmp = Path(tmp) if tmp is not None else self.path.with_name(f".{self.path.stem}.partial.mp4")
        self.fps = float(fps) if fps and math.isfinite(fps) and fps > 0 else 30.0
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None

    def write(self, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        if self._writer is None:
            self.size = (w, h)
            self._writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*FOURCC), self.fps, (w, h))
            if not self._writer.isOpened():
                self._writer = None
                raise RecordingError(f"{self.path}: cannot write video (folder not writable, or no mp4 encoder)")
        if (w, h) != self.size:
            image = cv2.resize(image, self.size)
        self._writer.write(image)
        self.frames += 1

    def release(self) -> None:
        """Finish the temporary file (its trailer is written) without renaming it."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def close(self, ok: bool = True) -> Path | None:
        """The finished file's path, or None when nothing was written or `ok` is False (temporary removed)."""
        self.release()
        if ok and self.frames:
            os.replace(self.tmp, self.path)
            return self.path
        self.tmp.unlink(missing_ok=True)
        return None


def work_dir_for(path: str | os.PathLike) -> Path:
    """The folder a recording to `path` writes while it runs (`NAME.recording` beside `NAME.mp4`)."""
    video = Path(path).with_suffix(".mp4")
    return video.with_name(video.stem + WORK_SUFFIX)


class PoseRecorder:
    """Records annotated frames and their keypoints to `NAME.mp4`, `NAME.json` and `NAME.csv` (see the module
    docstring for the crash-safe layout while it runs). Not thread-safe: one thread writes, then one closes."""

    def __init__(self, path: str | os.PathLike, skeleton, fps: float, threshold: float = 0.1,
                 segment_seconds: float = SEGMENT_SECONDS):
        self.video_path = Path(path).with_suffix(".mp4")
        self.json_path = self.video_path.with_suffix(".json")
        self.csv_path = self.video_path.with_suffix(".csv")
        self.work_dir = work_dir_for(self.video_path)
        self.skeleton = skeleton
        self.fps = float(fps) if fps and math.isfinite(fps) and fps > 0 else 30.0
        self.threshold = threshold
        self.segment_frames = max(1, round(self.fps * segment_seconds))
        self.segment_seconds = segment_seconds
        self.frames_written = 0
        self.segments_closed = 0
        if self.work_dir.exists():
            raise RecordingError(f"{self.work_dir} holds an unfinished recording (the program stopped during it); "
                                 f"recover it with `python -m cpm_core.recorder {self.video_path}` or record to "
                                 "another name")
        try:
            self.video_path.parent.mkdir(parents=True, exist_ok=True)
            self.work_dir.mkdir()
            self._jsonl = open(self.work_dir / "keypoints.jsonl", "w", encoding="utf-8")
            self._jsonl.write(json.dumps({"skeleton": skeleton.to_dict(), "fps": self.fps,
                                          "keypoint_format": KEYPOINT_FORMAT}) + "\n")
            self._jsonl.flush()
            self._csv = open(self.work_dir / "keypoints.csv", "w", newline="", encoding="utf-8")
        except OSError as exc:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            raise RecordingError(f"{self.video_path}: cannot record here ({exc.strerror or exc})") from exc
        self._csv_writer = csv.writer(self._csv)
        header = ["frame", "time"]
        for name in skeleton.joints:
            header += [f"{name}_x", f"{name}_y", f"{name}_conf"]
        self._csv_writer.writerow(header)
        self._csv.flush()
        self._whole = VideoFile(self.video_path, self.fps, tmp=self.work_dir / "whole.partial.mp4")
        self._segment: VideoFile | None = None
        self._size: tuple[int, int] | None = None
        self._segment_started = 0.0
        self._closed = False

    def _segment_path(self, n: int) -> Path:
        return self.work_dir / f"segment-{n:06d}.mp4"

    def add(self, frame_bgr: np.ndarray, keypoints: np.ndarray, index: int, seconds: float | None = None) -> None:
        """Record one processed frame: `keypoints` (J, 3) in the frame's pixels, `index` the source frame,
        `seconds` its time in the source (default: `index / fps`)."""
        kp = np.array(keypoints, dtype=np.float64, copy=True)
        kp[:, 2] = np.clip(kp[:, 2], 0.0, 1.0)
        t = round(float(index) / self.fps if seconds is None else float(seconds), 4)
        annotated = draw_pose(frame_bgr, kp, self.skeleton, self.threshold)
        h, w = annotated.shape[:2]
        if self._size is None:
            self._size = (w, h)
        elif (w, h) != self._size:  # a folder of differently sized images: every frame gets the first's size
            annotated = cv2.resize(annotated, self._size)
        self._whole.write(annotated)
        if self._segment is None:
            seg = self._segment_path(self.segments_closed)
            self._segment = VideoFile(seg, self.fps, tmp=seg)  # written in place: only closed ones count
            self._segment_started = time.monotonic()
        self._segment.write(annotated)
        self._jsonl.write(json.dumps({"frame": int(index), "time": t, "keypoints": keypoint_rows(kp)}) + "\n")
        self._jsonl.flush()
        self._csv_writer.writerow([int(index), f"{t:.4f}"] + [f"{v:.3f}" for v in kp.reshape(-1)])
        self._csv.flush()
        self.frames_written += 1
        if (self._segment.frames >= self.segment_frames
                or time.monotonic() - self._segment_started >= self.segment_seconds):
            self._close_segment()

    def _close_segment(self) -> None:
        if self._segment is not None:
            self._segment.release()  # written in place: a released segment is complete and readable
            self._segment = None
            self.segments_closed += 1

    def close(self) -> None:
        """Finish `NAME.mp4`, `NAME.json` and `NAME.csv` and remove the work folder; safe to call twice. On an
        error (a full disk) the work folder stays, so `recover_recording` can still save what was recorded."""
        if self._closed:
            return
        self._closed = True
        self._close_segment()
        self._whole.release()
        self._jsonl.close()
        self._csv.close()
        try:
            _finish(self.work_dir, self.video_path, self._whole.tmp if self._whole.frames else None)
        except OSError as exc:
            raise RecordingError(f"{self.video_path}: could not finish the recording ({exc}); what was recorded "
                                 f"stays in {self.work_dir}") from exc


def _read_jsonl(path: Path) -> Iterator[dict]:
    """The complete lines of a keypoint log; a line cut short by a kill ends the log."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                return
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                return


def _finish(work: Path, video_path: Path, whole: Path | None) -> None:
    """Turn a work folder into NAME.json, NAME.csv and (from `whole`, or else from the segments) NAME.mp4."""
    json_path, csv_path = video_path.with_suffix(".json"), video_path.with_suffix(".csv")
    lines = _read_jsonl(work / "keypoints.jsonl")
    head = next(lines, None)
    if head is None:
        raise RecordingError(f"{work}: no keypoint log to recover")
    doc = JsonStream(json_path, head, "frames")
    try:
        for item in lines:
            doc.add(item)
    except BaseException:
        doc.close(ok=False)
        raise
    if whole:
        os.replace(whole, video_path)
    else:
        _join_segments(sorted(work.glob("segment-*.mp4")), video_path, float(head.get("fps") or 30.0))
    doc.close()
    csv_src = work / "keypoints.csv"
    if csv_src.exists():
        with atomic_output(csv_path) as tmp, open(csv_src, "rb") as src, open(tmp, "wb") as dst:
            for line in src:  # a row cut short by a kill is dropped
                if line.endswith(b"\n"):
                    dst.write(line)
    shutil.rmtree(work, ignore_errors=True)


def _join_segments(segments: list[Path], video_path: Path, fps: float) -> int:
    """Decode the readable segments in order into one mp4; a segment cut short by a kill decodes nothing."""
    out = VideoFile(video_path, fps)
    try:
        for seg in segments:
            try:
                with VideoReader(seg) as reader:
                    for frame in reader:
                        if frame.image is not None:
                            out.write(frame.image)
            except SourceError:  # the segment open at the kill has no trailer: nothing in it decodes
                continue
    except BaseException:
        out.close(ok=False)
        raise
    out.close()
    return out.frames


def recover_recording(path: str | os.PathLike) -> dict[str, Any]:
    """Save what an interrupted recording to `path` wrote: NAME.mp4 from its closed segments, NAME.json and
    NAME.csv from its keypoint logs; the work folder is removed afterwards. Returns the files and counts."""
    video_path = Path(path).with_suffix(".mp4")
    work = work_dir_for(video_path)
    if not work.is_dir():
        raise RecordingError(f"{work}: no unfinished recording here")
    (work / "whole.partial.mp4").unlink(missing_ok=True)  # never closed: it has no trailer, unreadable
    _finish(work, video_path, None)
    try:  # what the joined file's header says it holds (no segment decoded: no file)
        with VideoReader(video_path) as reader:
            frames = reader.frame_count or 0
    except SourceError:
        frames = 0
    with open(video_path.with_suffix(".json"), encoding="utf-8") as fh:
        keypoint_frames = len(json.load(fh)["frames"])
    return {"video": str(video_path) if video_path.exists() else None, "video_frames": frames,
            "json": str(video_path.with_suffix(".json")), "keypoint_frames": keypoint_frames,
            "csv": str(video_path.with_suffix(".csv"))}


def main(argv: list[str] | None = None) -> int:
    """`python -m cpm_core.recorder NAME.mp4`: recover an interrupted recording."""
    p = argparse.ArgumentParser(prog="python -m cpm_core.recorder",
                                description="Recover a recording whose program stopped during it.")
    p.add_argument("path", help="the recording's video path (NAME.mp4); its work folder is NAME.recording")
    args = p.parse_args(argv)
    # The segment open at the kill has no trailer; FFmpeg's "moov atom not found" for it is expected noise.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        got = recover_recording(args.path)
    except OSError as exc:
        print(f"recover: {exc}", file=sys.stderr)
        return 2
    print(f"recovered {got['video_frames']} video frames to {got['video']} and {got['keypoint_frames']} keypoint "
          f"frames to {got['json']} and {got['csv']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
