"""Benchmark: the detector front end on the shared hand and body videos.

    PYTHONPATH=. python bench/detection.py [--frames N] [--pose-frames M] [--max-subjects K]

Per video and detector:
- det rate: frames with at least one detection; mean detections per frame; detector ms/frame.
- ids: identities the MultiSubjectTracker created; id switches (proxy, below).
- fps 1: whole top-down pipeline (detect + one batched CPM call + tracking) on the first M frames, at most
  1 subject. fps 2x2: the same on a 2x2 mosaic of each frame (four copies of the subject, up to K posed, the
  mosaic at the frame's size so the detector sees smaller subjects); 'subj 2x2' is the mean number posed.
Id-switch proxy: a new id born in a frame within one box size (centre distance) of a track that was alive
(seen in the last `max_missed` + 1 frames) and is not matched in that frame: the same subject, still visible,
given a new identity. New ids far from every live track (new subjects, scene cuts) are not counted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from machine import describe_machine  # noqa: E402

from cpm_core.detection import DetectorUnavailable, MultiPoseEstimator, MultiSubjectTracker, make_detector  # noqa: E402
from cpm_core.sources import VideoReader  # noqa: E402

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "data" / "media"
HAND_VIDEOS = ["hand/mediapipe_hand_test_video.mp4", "hand/mediapipe_gesture_test_video.mp4",
               "hand/handpose3d_cam0.mp4", "hand/gesrec_hands.mp4"]
BODY_VIDEOS = ["body/bodypose3d_cam0.mp4", "body/mmpose_demo.mp4"]


def frames(path: Path, limit: int | None):
    """The video's first `limit` frames (all with None), read by `cpm_core.sources`."""
    with VideoReader(path) as reader:
        for frame in reader:
            if limit is not None and frame.index >= limit:
                break
            if frame.image is not None:
                yield frame.image


def _centre(b: np.ndarray) -> np.ndarray:
    return (b[:2] + b[2:]) / 2


def detection_pass(detector, path: Path, limit: int | None) -> dict:
    tracker = MultiSubjectTracker(smooth=False)
    n = hit = dets = switches = 0
    t_det = 0.0
    for frame in frames(path, limit):
        t = time.perf_counter()
        found = detector.detect(frame)
        t_det += time.perf_counter() - t
        n += 1
        hit += bool(found)
        dets += len(found)
        alive = [(tr.id, tr.box.copy()) for tr in tracker.tracks]
        first_new = tracker._next_id
        seen = tracker.update(found)
        matched = {tr.id for tr in seen}
        for tr in seen:
            if tr.id < first_new:
                continue
            size = float(np.sqrt(np.prod(np.clip(tr.box[2:] - tr.box[:2], 1, None))))
            if any(tid not in matched and np.linalg.norm(_centre(b) - _centre(tr.box)) <= size for tid, b in alive):
                switches += 1
    return {"frames": n, "rate": hit / max(n, 1), "per_frame": dets / max(n, 1), "ms": 1e3 * t_det / max(n, 1),
            "ids": tracker._next_id - 1, "switches": switches}


def mosaic(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return np.vstack([np.hstack([small, small]), np.hstack([small, small])])


def pipeline_fps(estimator, detector, path: Path, limit: int, max_subjects: int,
                 tiled: bool = False) -> tuple[float, float]:
    multi = MultiPoseEstimator(estimator, detector, max_subjects=max_subjects)
    clip = [mosaic(f) if tiled else f for f in frames(path, limit)]
    multi.process(clip[0])  # warm the batched path for this batch size
    multi.reset()
    subjects = 0
    t = time.perf_counter()
    for frame in clip:
        subjects += len(multi.process(frame).subjects)
    dt = time.perf_counter() - t
    return len(clip) / dt, subjects / len(clip)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=None, help="frames per video for detection (default: all)")
    ap.add_argument("--pose-frames", type=int, default=40, help="frames per video for the pipeline fps")
    ap.add_argument("--max-subjects", type=int, default=4)
    ap.add_argument("--detectors", default="palm,pose,hog", help="comma-separated subset to run")
    args = ap.parse_args()
    from cpm_core.estimator import PoseEstimator

    estimators = {"hand": PoseEstimator.default("hand"), "body": PoseEstimator.default("body")}
    print(f"machine: {describe_machine()}")
    print(f"models: hand '{estimators['hand'].card.name}' ({estimators['hand'].spec.name}), body "
          f"'{estimators['body'].card.name}' ({estimators['body'].spec.name})")
    k = args.max_subjects
    head = ("| video | detector | frames | det rate | det/frame | det ms | ids | id switches | fps 1 | fps 2x2 "
            "| subj 2x2 |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for kind, videos, names in (("hand", HAND_VIDEOS, ["palm"]), ("body", BODY_VIDEOS, ["pose", "hog"])):
        for name in names:
            if name not in args.detectors.split(","):
                continue
            try:
                detector = make_detector(name)
            except DetectorUnavailable as exc:
                print(f"| (all {kind}) | {name} | unavailable: {exc} |")
                continue
            for video in videos:
                path = MEDIA / video
                r = detection_pass(detector, path, args.frames)
                fps1, _ = pipeline_fps(estimators[kind], detector, path, args.pose_frames, 1)
                fpsk, subj = pipeline_fps(estimators[kind], detector, path, args.pose_frames, k, tiled=True)
                print(f"| {Path(video).name} | {name} | {r['frames']} | {100 * r['rate']:.1f}% | {r['per_frame']:.2f} "
                      f"| {r['ms']:.1f} | {r['ids']} | {r['switches']} | {fps1:.1f} | {fpsk:.1f} | {subj:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
