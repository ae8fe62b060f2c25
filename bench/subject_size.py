"""Does the small-person hint (`cpm_core.subject_size`) still hide the meaningless whole-frame poses of a body model?

    python bench/subject_size.py [--models DIR[,DIR...]] [--people N] [--backgrounds N]

The rule was tuned once, on the default body model of its day (body-rt-192x3), and says it should carry over to
any body model trained on the same targets. This bench checks that claim for a given model, on training data
only, as the rule was first measured: people of `body_more/train.json` and `body_pseudo/train.json` (frames
holding exactly one labelled person with >= 8 joints, every k-th), each whole and shrunk to 0.5 and 0.3 onto one
of the backgrounds the recipes train on, plus backgrounds alone. Every frame runs whole (no detector), as the
app runs a body model without Detect, through `PoseEstimator.from_path` (the runtime the app uses).

Printed per model: PCK@0.2 of the whole-frame pose against the person's size (longer side of the labelled
joints' box / the frame's longer side), the share of frames the hint hides in each size bin, wrong poses still
drawn (PCK < 0.5, no hint), good poses hidden (PCK >= 0.5, hint), and empty backgrounds hinted. Nothing here
reads a val file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from presence import DATA, background_images, every_kth, trained_backgrounds  # noqa: E402  (bench/ is on the path)

TRAIN_SETS = (DATA / "body_more" / "train.json", DATA / "body_pseudo" / "train.json")
SCALES = (1.0, 0.5, 0.3)
BINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 10.0)


def _people(path: Path, limit: int) -> list[tuple[Path, np.ndarray]]:
    """(image path, keypoints (J, 3)) of frames holding exactly one person with >= 8 labelled joints."""
    doc = json.loads(path.read_text())
    by_image: dict[int, list[dict]] = {}
    for ann in doc["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    out = []
    for img in doc["images"]:
        anns = by_image.get(img["id"], [])
        if len(anns) != 1:
            continue
        kp = np.asarray(anns[0]["keypoints"], np.float64).reshape(-1, 3)
        if (kp[:, 2] > 0).sum() >= 8:
            out.append((path.parent / img["file_name"], kp))
    return every_kth(out, limit)


def _backgrounds(limit: int) -> list[Path]:
    """Every k-th of the backgrounds the recipes train on (`training/recipes/backgrounds_train.txt`)."""
    paths = background_images()
    trained = trained_backgrounds(paths)
    return every_kth([p for p in paths if p.name in trained], limit)


def _place(image: np.ndarray, kp: np.ndarray, scale: float, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image shrunk by `scale` and pasted bottom-centre onto the background (resized to the image's size)."""
    if scale == 1.0:
        return image, kp
    h, w = image.shape[:2]
    frame = cv2.resize(background, (w, h), interpolation=cv2.INTER_AREA)
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    y0, x0 = h - small.shape[0], (w - small.shape[1]) // 2
    frame[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    moved = kp.copy()
    moved[:, 0] = kp[:, 0] * scale + x0
    moved[:, 1] = kp[:, 1] * scale + y0
    return frame, moved


def measure(model: str, people: list[tuple[Path, np.ndarray]], backgrounds: list[Path]) -> dict:
    from cpm_core.estimator import PoseEstimator
    from cpm_core.subject_size import subject_too_small

    est = PoseEstimator.from_path(model)
    skeleton = est.card.skeleton
    rows = []  # (size, pck, hinted)
    for i, (path, kp) in enumerate(people):
        image = cv2.imread(str(path))
        if image is None:
            continue
        background = cv2.imread(str(backgrounds[i % len(backgrounds)]))
        for scale in SCALES:
            frame, gt = _place(image, kp, scale, background)
            result = est.predict(frame)
            lab = gt[:, 2] > 0
            norm = float(np.ptp(gt[lab, :2], axis=0).max())
            pred = np.asarray(result.keypoints, np.float64)[:, :2]
            dist = np.linalg.norm(pred[lab] - gt[lab, :2], axis=1)
            pck = float(np.mean(np.nan_to_num(dist, nan=np.inf) <= 0.2 * norm))
            rows.append((norm / max(frame.shape[:2]), pck, subject_too_small(result, frame.shape, skeleton)))
    empty = []
    for path in backgrounds:
        frame = cv2.imread(str(path))
        if frame is not None:
            empty.append(subject_too_small(est.predict(frame), frame.shape, skeleton))
    return {"model": model, "runtime": est.runtime_description, "rows": rows, "empty": empty}


def report(m: dict) -> str:
    rows = np.asarray(m["rows"], np.float64)
    size, pck, hint = rows[:, 0], rows[:, 1], rows[:, 2].astype(bool)
    lines = [f"model: {m['model']} ({m['runtime']})",
             f"{'person size':<12} {'frames':>6} {'mean PCK':>9} {'hinted':>7}"]
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        sel = (size >= lo) & (size < hi)
        if sel.any():
            label = f"{lo:.1f}-{hi:.1f}" if hi < 10 else f">= {lo:.1f}"
            lines.append(f"{label:<12} {int(sel.sum()):>6} {pck[sel].mean():>9.2f} {hint[sel].mean():>7.0%}")
    wrong, good = pck < 0.5, pck >= 0.5
    lines.append(f"wrong poses (PCK < 0.5) drawn: {int((wrong & ~hint).sum())} of {int(wrong.sum())}; "
                 f"good poses (PCK >= 0.5) hidden: {int((good & hint).sum())} of {int(good.sum())}; "
                 f"empty backgrounds hinted: {sum(m['empty'])} of {len(m['empty'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=str(ROOT / "resources" / "models" / "body_default"),
                        help="comma-separated model folders")
    parser.add_argument("--people", type=int, default=60, help="people taken from each training set")
    parser.add_argument("--backgrounds", type=int, default=50)
    args = parser.parse_args(argv)
    people = [p for s in TRAIN_SETS for p in _people(s, args.people)]
    backgrounds = _backgrounds(args.backgrounds)
    print(f"{len(people)} people x {len(SCALES)} sizes, {len(backgrounds)} backgrounds (training data only)")
    for model in args.models.split(","):
        print(report(measure(model, people, backgrounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
