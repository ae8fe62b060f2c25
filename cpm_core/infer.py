"""`cpm infer`: poses for images, image folders and videos, as annotated media and one JSON file.

One bad input never stops the run: it is reported on one line, the rest are processed, and the exit status
is 2 so scripts notice.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from cpm_core.atomic_io import atomic_write_bytes, atomic_write_text
from cpm_core.orientation import UprightFollower
from cpm_core.preprocess import CropBox
from cpm_core.presence import THRESHOLD as PRESENCE_THRESHOLD
from cpm_core.progress import ProgressBar
from cpm_core.render import draw_pose, joints_view, multi_stage_view
from cpm_core.sources import SourceError, VideoReader, classify, folder_images, read_image

BATCH = 8


def register(subparsers) -> None:
    p = subparsers.add_parser("infer", help="estimate poses in images, folders and videos",
                              description="Estimate poses and write annotated images/videos and, with --json, "
                              "one JSON file of keypoints in the sources' pixels.")
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
    p.set_defaults(func=run)


class _Writers:
    """Annotated outputs for one source. Videos are written under a temporary name and renamed when
    complete, so an interrupted run never leaves a truncated file that looks finished."""

    def __init__(self, out_dir: Path | None, source: Path, kind: str, fps: float):
        self.out_dir, self.source, self.kind, self.fps = out_dir, source, kind, fps
        self._videos: dict[str, tuple[cv2.VideoWriter, Path, Path]] = {}
        self.written: list[Path] = []

    def _name(self, tag: str, frame_source: str, ext: str) -> Path:
        stem = Path(frame_source).stem if self.kind == "folder" else self.source.stem
        return self.out_dir / f"{stem}_{tag}{ext}"

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
            path = self._name(tag, frame_source, ".mp4")
            tmp = path.with_name(f".{path.stem}.partial.mp4")
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                     (image.shape[1], image.shape[0]))
            self._videos[tag] = (writer, tmp, path)
        self._videos[tag][0].write(image)

    def close(self, ok: bool = True) -> None:
        for writer, tmp, path in self._videos.values():
            writer.release()
            if ok:
                os.replace(tmp, path)
                self.written.append(path)
            else:
                tmp.unlink(missing_ok=True)
        self._videos.clear()


def _frames(path: Path, kind: str):
    """(frame index, frame source, image or None, error) for every frame; errors inside folders are per file."""
    if kind == "image":
        yield 0, str(path), read_image(path), None
    elif kind == "folder":
        for i, f in enumerate(folder_images(path)):
            try:
                yield i, str(f), read_image(f), None
            except SourceError as exc:
                yield i, str(f), None, str(exc)
    else:
        with VideoReader(path) as video:
            n = 0
            for n, frame in enumerate(video):
                yield n, str(path), frame, None
            if video.index == 0:
                raise SourceError(f"{path}: video has no decodable frames")


def _hidden(keypoints: np.ndarray) -> np.ndarray:
    """Keypoints that no drawing shows (NaN positions): a pose whose presence is below the threshold is listed
    in the JSON but not drawn, so hand-free frames get no skeleton on a forearm or a wall."""
    out = np.array(keypoints, dtype=np.float32, copy=True)
    out[:, :2] = np.nan
    return out


def _flush_detected(multi, batch: list, kind: str, path: Path, args, writers: _Writers, results: list, bar) -> None:
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


def _process(estimator, path: Path, args, out_dir: Path | None, results: list, errors: list[str],
             multi=None, follower: UprightFollower | None = None) -> None:
    kind = classify(path)
    if multi is not None:
        multi.reset()  # identities and smoothing belong to one source
    fps, total = 30.0, None
    if kind == "video":
        with VideoReader(path) as v:  # opens once more only to read the header; raises SourceError early
            fps, total = v.fps, v.frame_count_hint
    elif kind == "folder":
        total = len(folder_images(path))
    bar = ProgressBar(total, label=path.name) if kind != "image" else None
    writers = _Writers(out_dir, path, kind, fps)
    skel = estimator.card.skeleton
    # An upright model follows a video's subject; each image is searched afresh. One follower (and one palm
    # detector) serves every input.
    follower = follower or UprightFollower(estimator)
    follower.reset()
    batch: list[tuple[int, str, np.ndarray]] = []
    ok = False

    def flush() -> None:
        if multi is not None:
            _flush_detected(multi, batch, kind, path, args, writers, results, bar)
            batch.clear()
            return
        frames = [b[2] for b in batch]
        crops = [CropBox.centre_square(f.shape[1], f.shape[0]) if args.crop == "centre" else None for f in frames]
        if follower.upright:
            poses = []
            for frame, crop in zip(frames, crops):
                if kind != "video":
                    follower.reset()
                poses.append(follower.predict(frame, crop))
                if poses[-1].presence < PRESENCE_THRESHOLD:  # nothing in view: search afresh on the next frame
                    follower.reset()
        else:
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

    try:
        for index, src, frame, err in _frames(path, kind):
            if err:
                errors.append(err)
                print(f"cpm infer: {err}", file=sys.stderr)
                if bar:
                    bar.update()
                continue
            batch.append((index, src, frame))
            if len(batch) == BATCH:
                flush()
        if batch:
            flush()
        ok = True
    finally:
        writers.close(ok)
        if bar:
            bar.close()


def run(args: argparse.Namespace) -> int:
    from cpm_core.estimator import PoseEstimator
    from cpm_core.weights import WeightsError, default_model_path

    try:
        estimator = PoseEstimator.from_path(args.model or default_model_path("hand"))
    except (WeightsError, OSError) as exc:
        print(f"cpm infer: {exc}", file=sys.stderr)
        return 2
    card = estimator.card
    if args.model is None:
        print(f"cpm infer: using the embedded default model '{card.name}'", file=sys.stderr)
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
            return 2
    out_dir = Path(args.out_dir) if args.out_dir else (None if args.json else Path("cpm_out"))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    errors: list[str] = []
    follower = UprightFollower(estimator)
    for raw in args.paths:
        path = Path(raw)
        try:
            _process(estimator, path, args, out_dir, results, errors, multi, follower)
        except SourceError as exc:
            errors.append(str(exc))
            print(f"cpm infer: {exc}", file=sys.stderr)
    if args.json:
        doc = {"model": card.name, "trained": card.trained, "joints": list(card.skeleton.joints),
               "results": results}
        if multi is not None:
            doc["detector"] = multi.detector.name
        atomic_write_text(args.json, json.dumps(doc))
    frames = len(results)
    print(f"cpm infer: {frames} frame(s) from {len(args.paths)} input(s)"
          + (f", {len(errors)} error(s)" if errors else "")
          + (f"; media in {out_dir}" if out_dir else "") + (f"; keypoints in {args.json}" if args.json else ""),
          file=sys.stderr)
    return 2 if errors else 0
