"""`cpm infer`: poses for images, image folders and videos, as annotated media and one JSON file.

One bad input never stops the run: it is reported on one line, the rest are processed, and the exit status
is 2 so scripts notice. Outputs are checked before any work (a --json that is a folder, an --out-dir that is a
file: one line, exit 2), so a long run never fails at its very end. A video that decodes clearly fewer frames
than its header lists (a truncated file) is processed as far as it goes and reported like a bad input.

Output names (see `plan_names`): each input's media are named after its file stem, `STEM_TAG.png` for an image
(also each image of a folder) and `STEM_TAG.mp4` for a video, TAG being pose, multi or joints. When inputs share a
stem (case-insensitively: a/x.jpg, b/x.jpg, b/x.png), each of them is named after its path relative to their
common folder, separators and the extension's dot as `_` (a_x_jpg_pose.png, b_x_jpg_pose.png, b_x_png_pose.png);
a name still taken (the same file given twice) gets `-2`, `-3`, ... in input order. So no output of a run
replaces another; files left in --out-dir by an earlier run are replaced, and the run says how many.

Memory stays flat for any number of frames: keypoints stream into the JSON file (written under a temporary name,
renamed when complete) and videos are written as they go (`cpm_core.recorder`).

`--progress jsonl` is for programs that run `cpm infer` (the app's File > Analyse videos): stdout then carries only
JSON lines (`video`, `frame` at most ten a second, `error`, `done`; docs/protocol.md) and no progress bar is drawn.
A run stopped by SIGTERM or SIGINT (the app's Cancel) removes what it had not finished -- the JSON's temporary
file and the current input's partial videos -- and exits 130; media finished before the stop are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from cpm_core.atomic_io import atomic_write_bytes
from cpm_core.live_pipeline import ModelStep
from cpm_core.preprocess import CropBox
from cpm_core.presence import THRESHOLD as PRESENCE_THRESHOLD
from cpm_core.progress import ProgressBar
from cpm_core.recorder import JsonStream, VideoFile
from cpm_core.render import draw_pose, joints_view, multi_stage_view
from cpm_core.sources import SourceError, classify, folder_images, open_media

BATCH = 8


def register(subparsers) -> None:
    p = subparsers.add_parser("infer", help="estimate poses in images, folders and videos",
                              description="Estimate poses and write annotated images/videos and, with --json, "
                              "one JSON file of keypoints in the sources' pixels.",
                              epilog="Outputs are named STEM_pose.png / STEM_pose.mp4 after each input; inputs "
                              "that share a stem (a/x.jpg, b/x.jpg, b/x.png) are named after their path relative "
                              "to their common folder instead (a_x_jpg_pose.png, b_x_jpg_pose.png, "
                              "b_x_png_pose.png), so no output of a run replaces another.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image, image folder or video")
    p.add_argument("--model", default=None, help="model folder, port .pkl or TF checkpoint "
                   "(default: the embedded hand model)")
    p.add_argument("--out-dir", default=None, help="folder for annotated media (default: cpm_out, or none "
                   "when only --json is given)")
    p.add_argument("--json", default=None, help="write all keypoints to this JSON file")
    p.add_argument("--view", choices=("single", "multi", "joints"), default="single",
                   help="also write the multi-stage or per-joint heatmap view")
    p.add_argument("--crop", choices=("letterbox", "centre"), default="letterbox",
                   help="whole frame padded to a square, or the centred square (the port's demos)")
    p.add_argument("--threshold", type=float, default=0.1, help="hide joints below this confidence (a pose whose "
                   "presence 'score' is below 0.5 is not drawn at all)")
    p.add_argument("--detect", action="store_true", help="find subjects anywhere in the frame with a detector, "
                   "estimate each one's pose and track identities; JSON results get 'subjects'")
    p.add_argument("--detector", choices=("palm", "pose", "hog"), default=None,
                   help="with --detect: the detector (default: palm for hand models, pose for body models)")
    p.add_argument("--max-subjects", type=int, default=4, metavar="N", help="with --detect: at most N subjects")
    p.add_argument("--progress", choices=("bar", "jsonl"), default="bar",
                   help="bar: a progress bar on a terminal's stderr; jsonl: one JSON object per line on stdout "
                   "(video, frame, error, done; see docs/protocol.md), for programs that run this command")
    p.set_defaults(func=run)


class _Events:
    """`--progress jsonl`: machine-readable progress on stdout, one JSON object per line (docs/protocol.md).

    Why: a program running `cpm infer` (the app's Analyse videos) needs each input's frames done and total and
    each failure by input; the terminal bar is drawn only on a TTY and names nothing. `frame` events are at most
    `INTERVAL` apart, so a fast model does not flood the reader, but a source's last count is always sent, so a
    reader's progress reaches the total. Disabled, every call does nothing."""

    INTERVAL = 0.1

    def __init__(self, enabled: bool, stream=None):
        self.enabled = enabled
        self.stream = stream
        self.media: list[Path] = []  # finished annotated media, for the `done` event
        self._last = 0.0
        self._pending: tuple[str, int] | None = None

    def emit(self, event: str, **fields) -> None:
        if self.enabled:
            out = self.stream or sys.stdout
            out.write(json.dumps({"event": event, "time": round(time.time(), 3), **fields}) + "\n")
            out.flush()

    def source(self, source: str, kind: str, frames: int | None) -> None:
        self._last, self._pending = 0.0, None
        self.emit("video", source=source, kind=kind, frames=frames)

    def frame(self, source: str, done: int) -> None:
        now = time.monotonic()
        if now - self._last >= self.INTERVAL:
            self._last, self._pending = now, None
            self.emit("frame", source=source, frame=done)
        else:
            self._pending = (source, done)

    def end_source(self) -> None:
        if self._pending is not None:
            source, done = self._pending
            self._pending = None
            self.emit("frame", source=source, frame=done)


class _Tick:
    """One frame of a source done: the terminal bar (if any) and the `frame` event (if enabled) both hear it."""

    def __init__(self, bar: ProgressBar | None, events: _Events, source: str):
        self.bar, self.events, self.source, self.count = bar, events, source, 0

    def update(self) -> None:
        self.count += 1
        if self.bar:
            self.bar.update()
        self.events.frame(self.source, self.count)

    def close(self) -> None:
        if self.bar:
            self.bar.close()
        self.events.end_source()


def _plan_key(path: Path, base: Path) -> str:
    """`a/x.jpg` relative to `base` as `a_x_jpg`: the path's parts and its extension, joined by `_`."""
    try:
        rel = path.relative_to(base)
    except ValueError:
        rel = Path(*path.parts[1:]) if path.is_absolute() else path
    parts = [*rel.parent.parts, rel.stem] + ([rel.suffix[1:]] if rel.suffix else [])
    return "_".join(x for x in parts if x not in ("", ".", "..")) or path.stem


def plan_names(files: list[Path]) -> list[str]:
    """A distinct output name key for each input file, in order (see the module docstring): the stem; for
    stems shared case-insensitively, the path relative to those files' common folder with its extension; then
    `-2`, `-3`, ... for what is still taken. Deterministic: the same inputs in the same order give the same names."""
    resolved = [Path(os.path.abspath(f)) for f in files]
    groups: dict[str, list[int]] = {}
    for i, f in enumerate(resolved):
        groups.setdefault(f.stem.lower(), []).append(i)
    keys = [f.stem for f in resolved]
    for members in groups.values():
        if len(members) < 2:
            continue
        common = Path(os.path.commonpath([str(resolved[i].parent) for i in members]))
        for i in members:
            keys[i] = _plan_key(resolved[i], common)
    taken: set[str] = set()
    out = []
    for key in keys:
        name, n = key, 1
        while name.lower() in taken:
            n += 1
            name = f"{key}-{n}"
        taken.add(name.lower())
        out.append(name)
    return out


def _input_files(path: Path) -> list[Path]:
    """The files an input's outputs are named after (a folder's images; nothing for a folder that fails)."""
    if classify(path) == "folder":
        try:
            return folder_images(path)
        except (SourceError, OSError):
            return []
    return [path]


class _Writers:
    """Annotated outputs for one source, named by the run's plan (`plan_names`). Videos are written under a
    temporary name and renamed when complete, so an interrupted run never leaves a truncated file that looks
    finished."""

    def __init__(self, out_dir: Path | None, source: Path, kind: str, fps: float, names: dict[str, str]):
        self.out_dir, self.source, self.kind, self.fps = out_dir, source, kind, fps
        self.names = names  # file (str) -> name key
        self._videos: dict[str, VideoFile] = {}
        self.written: list[Path] = []

    def _name(self, tag: str, frame_source: str, ext: str) -> Path:
        file = frame_source if self.kind == "folder" else str(self.source)
        key = self.names.get(file) or Path(file).stem
        return self.out_dir / f"{key}_{tag}{ext}"

    def add(self, tag: str, image: np.ndarray, frame_source: str) -> None:
        if self.out_dir is None:
            return
        if self.kind != "video":
            path = self._name(tag, frame_source, ".png")
            ok, buf = cv2.imencode(".png", image)
            if ok:
                atomic_write_bytes(path, buf.tobytes())
                self.written.append(path)
            return
        if tag not in self._videos:
            self._videos[tag] = VideoFile(self._name(tag, frame_source, ".mp4"), self.fps)
        self._videos[tag].write(image)

    def close(self, ok: bool = True) -> None:
        for video in self._videos.values():
            done = video.close(ok)
            if done is not None:
                self.written.append(done)
        self._videos.clear()


class _Results:
    """Where results go: streamed into the --json document (if any) and counted; never kept in memory."""

    def __init__(self, stream: JsonStream | None):
        self.stream = stream
        self.count = 0

    def append(self, item: dict) -> None:
        if self.stream is not None:
            self.stream.add(item)
        self.count += 1


def _hidden(keypoints: np.ndarray) -> np.ndarray:
    """Keypoints that no drawing shows (NaN positions): a pose whose presence is below the threshold is listed
    in the JSON but not drawn, so hand-free frames get no skeleton on a forearm or a wall."""
    out = np.array(keypoints, dtype=np.float32, copy=True)
    out[:, :2] = np.nan
    return out


def _flush_detected(multi, batch: list, kind: str, path: Path, args, writers: _Writers, results: _Results,
                    bar) -> None:
    """--detect: every frame through detector + CPM + tracker; the first (best) subject's joints also go
    under 'keypoints', so readers of the single-subject JSON keep working. Each subject gets its pose's
    'presence' (the detector's own 'score' stays); the result's 'score' is the first subject's presence (0 when
    nothing was found). Subjects below the presence threshold keep their outline but get no skeleton."""
    from cpm_core.detection.draw import draw_subjects

    for index, src, frame in batch:
        subjects = multi.process(frame).subjects
        presence = [s.result.presence for s in subjects]
        entries = [dict(s.to_dict(), presence=round(p, 4)) for s, p in zip(subjects, presence)]
        results.append({"source": src if kind == "folder" else str(path), "frame": index,
                        "keypoints": entries[0]["keypoints"] if entries else [],
                        "score": round(presence[0], 4) if presence else 0.0, "subjects": entries})
        if writers.out_dir is not None:
            skel = multi.estimator.card.skeleton
            shown = [s for s, p in zip(subjects, presence) if p >= PRESENCE_THRESHOLD]
            hidden = [s for s, p in zip(subjects, presence) if p < PRESENCE_THRESHOLD]
            image = draw_subjects(frame, hidden, skel, args.threshold, draw_pose=False)
            writers.add("pose", draw_subjects(image, shown, skel, args.threshold), src)
        if bar:
            bar.update()


def _process(estimator, path: Path, args, out_dir: Path | None, results: _Results, errors: list[str],
             multi=None, step: ModelStep | None = None, names: dict[str, str] | None = None,
             events: _Events | None = None) -> None:
    events = events or _Events(False)
    kind = classify(path)
    if multi is not None:
        multi.reset()  # identities and smoothing belong to one source
    media = open_media(path)  # raises SourceError before any output when the source cannot be opened
    fps = media.fps or 30.0
    total = (media.frame_count or 0) if kind == "video" else media.frame_count  # a video's: the header's hint
    bar = ProgressBar(total, label=path.name) if kind != "image" and not events.enabled else None
    if events.enabled:
        events.source(str(path), kind, 1 if kind == "image" else total)
        bar = _Tick(bar, events, str(path))
    writers = _Writers(out_dir, path, kind, fps, names or {})
    skel = estimator.card.skeleton
    # The live pipeline's model step (cpm_core.live_pipeline), so the app and this command run one per-frame logic:
    # an upright model follows a video's subject; each image is searched afresh; no subject in view starts the
    # search again. One step (one follower, one palm detector) serves every input.
    step = step or ModelStep(estimator)
    step.reset()
    batch: list[tuple[int, str, np.ndarray]] = []
    ok = False

    def flush() -> None:
        if multi is not None:
            _flush_detected(multi, batch, kind, path, args, writers, results, bar)
            batch.clear()
            return
        frames = [b[2] for b in batch]
        crops = [CropBox.centre_square(f.shape[1], f.shape[0]) if args.crop == "centre" else None for f in frames]
        if step.follower.upright:
            poses = []
            for frame, crop in zip(frames, crops):
                if kind != "video":
                    step.reset()
                poses.append(step.single(frame, crop)[0])
        else:  # a plain model gains from batches; per frame it would be the same step (the follower passes through)
            poses = estimator.predict_batch(frames, crops, batch_size=BATCH)
        for (index, src, frame), res in zip(batch, poses):
            presence = res.presence
            results.append({"source": src if kind == "folder" else str(path), "frame": index,
                            "score": round(presence, 4),
                            "keypoints": [[round(float(x), 2), round(float(y), 2), round(float(c), 4)]
                                          for x, y, c in res.keypoints]})
            kp = res.keypoints if presence >= PRESENCE_THRESHOLD else _hidden(res.keypoints)
            if out_dir is not None:
                writers.add("pose", draw_pose(frame, kp, skel, args.threshold), src)
                if args.view != "single":
                    crop_img = res.crop.apply(frame)
                    if args.view == "multi":
                        kp_in = np.concatenate([res.crop.to_input(kp[:, :2]), kp[:, 2:]], axis=1)
                        img = multi_stage_view(crop_img, res.heatmaps, kp_in, skel)
                    else:
                        img = joints_view(res.heatmaps[-1], skel)
                    writers.add(args.view, img, src)
            if bar:
                bar.update()
        batch.clear()

    def report(err: str) -> None:
        errors.append(err)
        print(f"cpm infer: {err}", file=sys.stderr)
        events.emit("error", source=str(path), message=err)

    try:
        for frame in media.frames():
            if frame.error:
                report(frame.error)
                if bar and kind == "folder":  # a folder's unreadable file still counts; a video's end note not
                    bar.update()
                continue
            batch.append((frame.index, frame.source, frame.image))
            if len(batch) == BATCH:
                flush()
        note = media.end_note()
        if note:  # the decodable part was processed; the shortfall is reported like a bad input
            report(f"{note}; processed those {media.index}")
        if batch:
            flush()
        ok = True
    finally:
        media.close()
        writers.close(ok)
        events.media += writers.written
        if bar:
            bar.close()


def _output_problem(raw: str, flag: str, want_dir: bool) -> str | None:
    """Why `raw` cannot take this run's output (a --json that is a folder, an --out-dir that is a file, a
    parent that is a file or not writable), or None. Checked before any work, so a run never fails at its end."""
    p = Path(raw)
    if p.exists():
        if want_dir and not p.is_dir():
            return f"{flag} {raw}: is a file, not a folder"
        if not want_dir and p.is_dir():
            return f"{flag} {raw}: is a folder; give a file name, e.g. {p / 'keypoints.json'}"
        folder = p if want_dir else p.parent
    else:
        if not want_dir and raw.endswith(("/", os.sep)):
            return f"{flag} {raw}: names a folder; give a file name, e.g. {p / 'keypoints.json'}"
        folder = p.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            return f"{flag} {raw}: {folder} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{flag} {raw}: {folder} is not writable"
    return None


def _planned_outputs(out_dir: Path, inputs: list[Path], names: dict[str, str], view: str) -> list[Path]:
    """Every media file the run will write (for the check against inputs and the note on replaced files)."""
    tags = ["pose"] + ([view] if view != "single" else [])
    out = []
    for path in inputs:
        kind = classify(path)
        ext = ".mp4" if kind == "video" else ".png"
        for f in _input_files(path):
            out += [out_dir / f"{names[str(f)]}_{tag}{ext}" for tag in tags]
    return out


def run(args: argparse.Namespace) -> int:
    """`cpm infer`; SIGTERM is turned into the KeyboardInterrupt of Ctrl-C while it runs, so a stopped run (the
    app's Cancel) cleans up its unfinished outputs instead of dying with their temporary files in place."""
    events = _Events(getattr(args, "progress", "bar") == "jsonl")
    previous = None

    def stop(signum, _frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the clean-up that follows is not interrupted again
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, stop)
    try:
        return _run(args, events)
    except KeyboardInterrupt:
        print("cpm infer: stopped; the unfinished input's outputs and the JSON were not written", file=sys.stderr)
        events.emit("done", stopped=True, media=[str(p) for p in events.media])
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace, events: _Events) -> int:
    from cpm_core.estimator import PoseEstimator
    from cpm_core.weights import WeightsError, default_model_path

    # A damaged video makes FFmpeg print a line per bad packet (hundreds); our one line says it instead.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    out_dir = Path(args.out_dir) if args.out_dir else (None if args.json else Path("cpm_out"))
    problems = [m for m in (_output_problem(args.json, "--json", False) if args.json else None,
                            _output_problem(str(out_dir), "--out-dir", True) if out_dir is not None else None) if m]
    inputs = [Path(raw) for raw in args.paths]
    input_files = {os.path.abspath(f) for path in inputs for f in _input_files(path)}
    if args.json and os.path.abspath(args.json) in input_files:
        problems.append(f"--json {args.json}: is one of the inputs; it would be replaced")
    names: dict[str, str] = {}
    if out_dir is not None and not problems:
        files = [f for path in inputs for f in _input_files(path)]
        names = {str(f): key for f, key in zip(files, plan_names(files))}
        planned = _planned_outputs(out_dir, inputs, names, args.view)
        clash = [o for o in planned if os.path.abspath(o) in input_files]
        if clash:
            problems.append(f"--out-dir {out_dir}: output {clash[0]} would replace an input; choose another folder")
    if problems:
        print(f"cpm infer: {problems[0]}", file=sys.stderr)
        events.emit("error", source=None, message=problems[0])
        return 2
    try:
        estimator = PoseEstimator.from_path(args.model or default_model_path("hand"))
    except (WeightsError, OSError) as exc:
        print(f"cpm infer: {exc}", file=sys.stderr)
        events.emit("error", source=None, message=f"cannot load the model: {exc}")
        return 2
    card = estimator.card
    if args.model is None:
        print(f"cpm infer: using the embedded default model '{card.name}' on {estimator.runtime_description}",
              file=sys.stderr)
    if not card.trained:
        print(f"cpm infer: WARNING: model '{card.name}' is UNTRAINED (random weights): keypoints are meaningless",
              file=sys.stderr)
    multi = None
    if getattr(args, "detect", False):
        from cpm_core.detection import DetectorUnavailable, MultiPoseEstimator, default_detector_name, make_detector

        try:
            detector = make_detector(args.detector or default_detector_name(card.skeleton.name))
            multi = MultiPoseEstimator(estimator, detector, max_subjects=max(1, args.max_subjects))
        except (DetectorUnavailable, OSError, ValueError) as exc:
            print(f"cpm infer: {exc}", file=sys.stderr)
            events.emit("error", source=None, message=str(exc))
            return 2
    try:
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            replaced = sum(1 for o in set(planned) if o.exists())
            if replaced:
                print(f"cpm infer: replacing {replaced} existing file(s) in {out_dir} (from an earlier run?)",
                      file=sys.stderr)
        stream = (JsonStream(args.json, {"model": card.name, "trained": card.trained,
                                         "runtime": f"{estimator.runtime.name} {estimator.precision}",
                                         "joints": list(card.skeleton.joints)}, "results") if args.json else None)
    except OSError as exc:
        print(f"cpm infer: cannot write the output: {exc}", file=sys.stderr)
        events.emit("error", source=None, message=f"cannot write the output: {exc}")
        return 2
    results = _Results(stream)
    errors: list[str] = []
    step = ModelStep(estimator)
    ok = False
    try:
        for path in inputs:
            try:
                _process(estimator, path, args, out_dir, results, errors, multi, step, names, events)
            except SourceError as exc:
                errors.append(str(exc))
                print(f"cpm infer: {exc}", file=sys.stderr)
                events.emit("error", source=str(path), message=str(exc))
        ok = True
    finally:
        if stream is not None:
            stream.close(ok, tail={"detector": multi.detector.name} if multi is not None else None)
    print(f"cpm infer: {results.count} frame(s) from {len(args.paths)} input(s)"
          + (f", {len(errors)} error(s)" if errors else "")
          + (f"; media in {out_dir}" if out_dir else "") + (f"; keypoints in {args.json}" if args.json else ""),
          file=sys.stderr)
    events.emit("done", stopped=False, frames=results.count, inputs=len(args.paths), errors=len(errors),
                json=args.json, out_dir=str(out_dir) if out_dir else None, media=[str(p) for p in events.media])
    return 2 if errors else 0
