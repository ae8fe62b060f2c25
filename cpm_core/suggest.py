"""`cpm suggest`: the frames worth labelling next, chosen by how unsure the model itself is, and varied.

After a first round of labelling and training, the frames that teach a model most are the ones it gets wrong,
and a CPM can say where that is: its stages refine one another, so where the last stage moved a peak far from
where the stage before put it, or the two stages' maps disagree, or the peaks are low or have a rival mode, the
model is unsure. Every scored frame gets these components, each mapped to [0, 1] (1 = as unsure as it gets):

- `stage_shift`: mean distance between the last two stages' peaks, in pose sizes, saturating at `SHIFT_FULL`;
- `stage_divergence`: mean Jensen-Shannon divergence (base 2) between the last two stages' joint maps;
- `low_peak`: 1 - mean height of the last stage's peaks;
- `multimodal`: mean ratio of each joint map's strongest rival mode (a local maximum further than `RIVAL_CELLS`
  from the peak) to its peak;
- `jump` (videos): mean distance of the joints from where the Kalman-smoothed track (`cpm_core.tracking`)
  predicted them (constant velocity from its last two estimates), in pose sizes, saturating at `JUMP_FULL`;
- `bones`: how far the pose's proportions are from the skeleton's typical ones (robust z-scores of limb ratios
  and, for hands, palm geometry, as `cpm_core.dataset.check` computes them: the built-in hand reference, else
  the run's own statistics), 0 up to 2 robust SDs, 1 at `cpm_core.dataset.check.JOINT_Z`.

The frame's score is their mean, times a presence gate (`presence / THRESHOLD`, at most 1): a frame without a
subject has flat, disagreeing maps, but nothing to label. Presence is listed among the reasons.

Picking N frames by score alone would give N neighbours of one hard moment. Instead: frames closer than
`min_gap` frames to a better one of the same video are dropped (non-maximum suppression in time), the best
`POOL_FACTOR * N` remaining form a pool, the pool is clustered into N groups by k-means on 16x16 grayscale
thumbnails, and each group gives its best frame. The result is sorted by score.

Memory: frames are read one at a time (a video sequentially, skipped frames only grabbed, not decoded); per
scored frame only the numbers above, a few feature values and a 256-byte thumbnail are kept, about 0.7 kB, so a
10-minute video at 30 fps needs about 13 MB whatever its resolution.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from cpm_core.atomic_io import atomic_write_bytes, atomic_write_text
from cpm_core.heatmaps import decode_predictions
from cpm_core.presence import THRESHOLD as PRESENCE_THRESHOLD
from cpm_core.sources import SourceError, open_media

SHIFT_FULL = 0.2  # stage shift (pose sizes) at which the component is 1
JUMP_FULL = 0.3  # distance from the Kalman prediction (pose sizes) at which the component is 1
RIVAL_CELLS = 3.0  # a rival mode lies at least this many heatmap cells from the peak
BONE_Z_FROM = 2.0  # robust z below which the proportions count as typical
POOL_FACTOR = 4  # candidates per wanted frame that go into the diversity clustering
THUMB = 16  # thumbnail side for the diversity clustering
COMPONENTS = ("stage_shift", "stage_divergence", "low_peak", "multimodal", "jump", "bones")


@dataclass
class FrameScore:
    """One scored frame: where it is, how unsure the model was (`score`, [0, 1]) and why (`reasons`)."""

    source: str
    frame: int
    score: float
    reasons: dict[str, float]
    thumb: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(THUMB * THUMB, np.uint8))
    features: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    def to_dict(self) -> dict:
        return {"source": self.source, "frame": self.frame, "score": round(float(self.score), 4),
                "reasons": {k: round(float(v), 4) for k, v in self.reasons.items()}}


# ------------------------------------------------------------------------------------------------ per frame
def _rival_ratio(maps: np.ndarray, peaks_yx: np.ndarray) -> np.ndarray:
    """(J,) strongest local maximum further than RIVAL_CELLS from each map's peak, over the peak's height."""
    h, w, j = maps.shape
    dilated = cv2.dilate(np.ascontiguousarray(maps, np.float32), np.ones((3, 3), np.uint8)).reshape(h, w, j)
    is_max = (maps >= dilated) & (maps > 0)
    yy, xx = np.mgrid[:h, :w]
    far = (yy[..., None] - peaks_yx[:, 0]) ** 2 + (xx[..., None] - peaks_yx[:, 1]) ** 2 > RIVAL_CELLS ** 2
    rival = np.where(is_max & far, maps, 0.0).max(axis=(0, 1))
    peak = maps.max(axis=(0, 1))
    return np.where(peak > 1e-6, np.clip(rival / np.maximum(peak, 1e-6), 0.0, 1.0), 0.0)


def _js_divergence(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(J,) Jensen-Shannon divergence in bits between (h, w, J) maps taken as distributions over cells."""
    p = np.clip(a, 0.0, None).reshape(-1, a.shape[-1]) + 1e-8
    q = np.clip(b, 0.0, None).reshape(-1, b.shape[-1]) + 1e-8
    p, q = p / p.sum(axis=0), q / q.sum(axis=0)
    m = 0.5 * (p + q)
    return np.clip(0.5 * (p * np.log2(p / m)).sum(axis=0) + 0.5 * (q * np.log2(q / m)).sum(axis=0), 0.0, 1.0)


def pose_size(xy: np.ndarray, floor: float) -> float:
    """The pose's extent (larger side of its joints' box), at least `floor`."""
    xy = xy[np.isfinite(xy).all(axis=1)]
    if len(xy) < 2:
        return floor
    return max(float(np.ptp(xy[:, 0])), float(np.ptp(xy[:, 1])), floor)


def heatmap_uncertainty(heatmaps: np.ndarray, num_joints: int) -> dict[str, float]:
    """The components read from one result's (stages, h, w, C) heatmaps alone: stage shift and divergence (0
    for a one-stage model), low and multi-modal peaks."""
    hm = np.nan_to_num(np.asarray(heatmaps, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    last = hm[-1][..., :num_joints]
    dec = decode_predictions(hm[-1], num_joints)
    size = pose_size(dec[:, :2], floor=2.0)
    out = {"low_peak": float(1.0 - np.clip(dec[:, 2], 0.0, 1.0).mean())}
    peaks = np.stack(np.unravel_index(last.reshape(-1, num_joints).argmax(axis=0), last.shape[:2]), axis=1)
    out["multimodal"] = float(_rival_ratio(last, peaks).mean())
    if len(hm) >= 2:
        prev = hm[-2][..., :num_joints]
        dec_prev = decode_predictions(hm[-2], num_joints)
        shift = np.linalg.norm(dec[:, :2] - dec_prev[:, :2], axis=1).mean() / size
        out["stage_shift"] = float(min(1.0, shift / SHIFT_FULL))
        out["stage_divergence"] = float(_js_divergence(last, prev).mean())
    else:
        out["stage_shift"] = out["stage_divergence"] = 0.0
    return out


class _Track:
    """A Kalman-smoothed track of one video's joints, for the `jump` component."""

    def __init__(self) -> None:
        from cpm_core.tracking import KalmanSmoother  # noqa: PLC0415 - filterpy only when scoring videos

        self.smoother = KalmanSmoother()
        self.history: list[np.ndarray] = []

    def reset(self) -> None:
        self.smoother.reset()
        self.history = []

    def jump(self, keypoints: np.ndarray) -> float | None:
        """Distance (pose sizes, mean over joints) of `keypoints` from the track's prediction; None before the
        track has two estimates. Then feeds the keypoints to the track."""
        kp = np.asarray(keypoints, np.float64)
        out = None
        if len(self.history) >= 2:
            predicted = 2 * self.history[-1] - self.history[-2]
            size = pose_size(kp[:, :2], floor=8.0)
            out = float(np.nanmean(np.linalg.norm(kp[:, :2] - predicted, axis=1)) / size)
        self.history = (self.history + [self.smoother.update(kp)[:, :2].astype(np.float64)])[-2:]
        return out


def _thumb(frame: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    return cv2.resize(gray, (THUMB, THUMB), interpolation=cv2.INTER_AREA).reshape(-1)


def score_sources(estimator, sources: Sequence[str | Path], every: int = 1,
                  progress: Callable[[str, int, int | None], None] | None = None,
                  cancelled: Callable[[], bool] | None = None) -> list[FrameScore]:
    """Score every `every`-th frame of each source (video, folder or image) with `estimator` (a
    `PoseEstimator`), streaming. `progress(source, frames read, frame count hint)` after each frame;
    `cancelled()` true stops early (the frames scored so far are returned). Sources that cannot be opened raise
    `SourceError`. The `bones` component needs every frame's features and is filled in at the end."""
    from cpm_core.dataset.check import instance_features  # noqa: PLC0415 - dataset package only when scoring
    from cpm_core.upright import UprightFollower  # noqa: PLC0415 - imports the palm detector

    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    skeleton = estimator.card.skeleton
    joints = skeleton.num_joints
    follower = UprightFollower(estimator)
    out: list[FrameScore] = []
    for src in sources:
        follower.reset()
        track = _Track()
        with open_media(src) as media:  # cpm_core.sources, the one reader of frames
            is_video = media.kind == "video"
            total = media.frame_count
            if total and is_video:
                total = (total + every - 1) // every
            # A video's every `every`-th frame (the others only grabbed, not decoded); a folder's images were
            # chosen one by one: all of them.
            for done, read in enumerate(media.frames(every if is_video else 1), start=1):
                if cancelled is not None and cancelled():
                    return _finish(out, skeleton)
                name, index, frame = (str(src) if is_video else read.source), read.index, read.image
                if frame is None:
                    if progress:
                        progress(str(src), done, total)
                    continue
                if not is_video:
                    follower.reset()
                result = follower.predict(frame)
                presence = float(result.presence)
                reasons = heatmap_uncertainty(result.heatmaps, joints)
                if presence < PRESENCE_THRESHOLD:
                    follower.reset()
                    track.reset()
                    reasons["jump"] = 0.0
                elif is_video:
                    jump = track.jump(result.keypoints)
                    reasons["jump"] = 0.0 if jump is None else float(min(1.0, jump / JUMP_FULL))
                else:
                    reasons["jump"] = 0.0
                reasons["presence"] = presence
                feats = instance_features(result.keypoints[None, :, :2], np.isfinite(result.keypoints[None, :, 0]),
                                          skeleton)[0].astype(np.float32)
                out.append(FrameScore(name, index, 0.0, reasons, _thumb(frame), feats))
                if progress:
                    progress(str(src), done, total)
    return _finish(out, skeleton)


def _finish(scores: list[FrameScore], skeleton) -> list[FrameScore]:
    """Fill in the `bones` component (it needs statistics) and every frame's score."""
    from cpm_core.dataset.check import JOINT_Z, hand21_reference, learn_stats  # noqa: PLC0415

    if not scores:
        return scores
    feats = np.stack([s.features for s in scores]).astype(np.float64)
    stats = hand21_reference() if skeleton.name == "hand21" else learn_stats(feats, skeleton)
    with np.errstate(invalid="ignore"):
        z = np.nan_to_num(np.abs(stats.z(feats)), nan=0.0).max(axis=1, initial=0.0)
    bones = np.clip((z - BONE_Z_FROM) / (JOINT_Z - BONE_Z_FROM), 0.0, 1.0)
    for s, b in zip(scores, bones):
        s.reasons["bones"] = float(b)
        gate = min(1.0, s.reasons["presence"] / PRESENCE_THRESHOLD)
        s.score = float(gate * np.mean([s.reasons[c] for c in COMPONENTS]))
    return scores


# ------------------------------------------------------------------------------------------------ selection
def select_frames(scores: Sequence[FrameScore], count: int, min_gap: int = 0, seed: int = 0) -> list[FrameScore]:
    """`count` frames that are uncertain and varied (see the module docstring), sorted by score.

    `min_gap`: frames of one video closer than this to a better-scoring pick are skipped while there are enough
    others; when the suppression leaves fewer than `count`, the best skipped frames fill up the list."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    order = sorted(range(len(scores)), key=lambda i: -scores[i].score)
    pool: list[int] = []
    for i in order:
        s = scores[i]
        if min_gap > 0 and any(scores[k].source == s.source and abs(scores[k].frame - s.frame) < min_gap
                               for k in pool):
            continue
        pool.append(i)
        if len(pool) >= POOL_FACTOR * count:
            break
    if len(pool) <= count:
        chosen = pool + [i for i in order if i not in pool][:count - len(pool)]
    else:
        data = np.stack([scores[i].thumb for i in pool]).astype(np.float32) / 255.0
        data -= data.mean(axis=1, keepdims=True)  # look, not brightness
        cv2.setRNGSeed(seed)
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-4)
        _, labels, _ = cv2.kmeans(data, count, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
        best: dict[int, int] = {}
        for i, lab in zip(pool, labels.reshape(-1)):  # pool is in score order: the first of a cluster is its best
            best.setdefault(int(lab), i)
        chosen = list(best.values())
        chosen += [i for i in pool if i not in chosen][:count - len(chosen)]  # k-means may leave a cluster empty
    return sorted((scores[i] for i in chosen), key=lambda s: -s.score)


def suggestions_document(model: str, picked: Sequence[FrameScore], scored: int) -> dict:
    """The JSON `cpm suggest --json` writes: {"model", "frames": [{"source", "frame", "score", "reasons"}]}."""
    return {"model": model, "scored_frames": scored, "components": list(COMPONENTS),
            "frames": [p.to_dict() for p in picked]}


def save_frames(video: str | Path, indices: Sequence[int], out_dir: str | Path) -> list[tuple[int, Path]]:
    """Write the frames `indices` of `video` as `<stem>_<frame:06d>.jpg` JPEGs into `out_dir` (one sequential
    read); returns [(index, path)] of those found, in index order."""
    from cpm_core.dataset.imageinfo import encode_image  # noqa: PLC0415

    video, out = Path(video), Path(out_dir)
    todo = set(int(i) for i in indices)
    saved: list[tuple[int, Path]] = []
    if not todo:
        return saved
    out.mkdir(parents=True, exist_ok=True)
    with open_media(video) as media:
        for frame in media.frames():
            if frame.index in todo and frame.image is not None:
                target = out / f"{video.stem}_{frame.index:06d}.jpg"
                atomic_write_bytes(target, encode_image(frame.image, ".jpg", 95))
                saved.append((frame.index, target))
                todo.discard(frame.index)
                if not todo:
                    break
    return saved


# ------------------------------------------------------------------------------------------------ command line
def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("suggest", help="suggest the frames worth labelling: where the model is unsure",
                              description="Score frames by the model's own uncertainty (stage disagreement, low "
                              "or multi-modal peaks, jumps against a Kalman track, odd proportions) and pick "
                              "COUNT that are uncertain and varied. Progress on stderr.")
    p.add_argument("model", help="model folder, port .pkl or TF checkpoint; 'hand' or 'body' for the embedded "
                   "default model")
    p.add_argument("sources", nargs="+", metavar="VIDEO_OR_FOLDER", help="videos, image folders or images")
    p.add_argument("--count", type=int, default=20, help="frames to suggest (default 20)")
    p.add_argument("--json", required=True, metavar="OUT", help="write the suggestions to this JSON file")
    p.add_argument("--every", type=int, default=1, metavar="K", help="score every K-th frame of a video (default 1)")
    p.add_argument("--min-gap", type=int, default=None, metavar="FRAMES",
                   help="keep suggestions of one video at least this many frames apart (default: half a second)")
    p.add_argument("--seed", type=int, default=0, help="seed of the diversity clustering")
    p.set_defaults(func=run)


def _load_estimator(model: str):
    from cpm_core.estimator import PoseEstimator  # noqa: PLC0415 - TensorFlow
    from cpm_core.weights import default_model_path  # noqa: PLC0415

    if model in ("hand", "body") and not Path(model).exists():
        return PoseEstimator.from_path(default_model_path(model))
    return PoseEstimator.from_path(model)


def run(args: argparse.Namespace) -> int:
    from cpm_core.progress import ProgressBar  # noqa: PLC0415
    from cpm_core.weights import WeightsError  # noqa: PLC0415

    for name, value, low in (("--count", args.count, 1), ("--every", args.every, 1),
                             ("--min-gap", args.min_gap if args.min_gap is not None else 0, 0)):
        if value < low:
            print(f"cpm suggest: error: {name} must be at least {low}, got {value}", file=sys.stderr)
            return 2
    missing = [s for s in args.sources if not Path(s).exists()]
    if missing:
        print(f"cpm suggest: error: {missing[0]}: no such file or folder", file=sys.stderr)
        return 2
    try:
        estimator = _load_estimator(args.model)
    except (WeightsError, OSError, ValueError) as exc:
        print(f"cpm suggest: error: cannot load model {args.model}: {exc}", file=sys.stderr)
        return 2
    if not estimator.card.trained:
        print(f"cpm suggest: WARNING: model '{estimator.card.name}' is UNTRAINED: its uncertainty means nothing",
              file=sys.stderr)
    bars: dict[str, ProgressBar] = {}

    def progress(src: str, done: int, total: int | None) -> None:
        if src not in bars:
            for bar in bars.values():
                bar.close()
            bars.clear()
            bars[src] = ProgressBar(total, label=Path(src).name)
        bars[src].update()

    gaps = []
    try:
        for src in args.sources:
            with open_media(src) as media:
                fps = media.fps
            gaps.append(max(args.every, round(fps / 2)) if fps else 0)
        scores = score_sources(estimator, args.sources, args.every, progress)
    except SourceError as exc:
        print(f"cpm suggest: error: {exc}", file=sys.stderr)
        return 2
    finally:
        for bar in bars.values():
            bar.close()
    if not scores:
        print("cpm suggest: error: no frame could be read from the sources", file=sys.stderr)
        return 2
    gap = args.min_gap if args.min_gap is not None else max(gaps)
    picked = select_frames(scores, args.count, min_gap=gap, seed=args.seed)
    try:
        atomic_write_text(args.json, json.dumps(suggestions_document(estimator.card.name, picked, len(scores)),
                                                indent=1) + "\n")
    except OSError as exc:
        print(f"cpm suggest: error: cannot write {args.json}: {exc}", file=sys.stderr)
        return 2
    print(f"cpm suggest: {len(picked)} of {len(scores)} scored frames suggested (time gap {gap} frames); "
          f"written to {args.json}", file=sys.stderr)
    return 0
