"""Does the presence score tell hands from hand-free images? Counts both sides for one model.

    python bench/presence.py [--model DIR] [--sets backgrounds,crops,hands] [--limit N] [--dump FILE.npz]

Run the rows in separate calls on a busy machine: with a training run on the same 2 cores the backgrounds rows
(407 images, each searched at four angles when the palm detector finds nothing) took 5.5-9 min, the hands
2 min; `--limit` subsamples.

- Hand-free: the images of `../shared/data/backgrounds/images/` that no recipe trains on (not in
  `training/recipes/backgrounds_train.txt`: index % 5 in {3, 4}; those in it get their own row) through exactly
  what `cpm infer` does with an
  image (`UprightFollower` on the whole frame: palm detector, else the 4-way angle search, then one refined
  pass), counted as a pass when its presence is below 0.5. Images whose index is a multiple of
  `cpm_core.presence.TUNING_EVERY` were used to choose the rule's parameters, so they are reported in their own
  row and not counted in the held-out row.
- Hand-free crops (an extra row, `--sets crops`): from the same held-out images, two square crops of a third of the
  shorter side each (a hand-sized window, what the tracker looks at after losing a hand), seeded.
- Labelled hands: every hand with >= 3 labelled joints in `hand_more/val.json` and `hand_pseudo/val.json`,
  cropped as `cpm eval` crops it (`CropBox.around(box, card margin)`) and turned as the app does on a first
  frame (palm detector for angle and side, else the search: `upright.search_upright`), counted as a pass
  when its presence is above 0.5. These val files were never used to choose anything.

Calibration (`--calibrate`, `--write-card`): the score's midpoint (the joint blobs at which presence is 0.5) is
measured per model on its training data only, as the rule was first tuned: 200 hands of `hand_more/train.json`
and 100 of `hand_pseudo/train.json` (every k-th, cropped and turned as above) against the backgrounds the recipes
train on (`backgrounds_train.txt`), run whole, plus two hand-sized windows of each of those with index % 5 == 0;
`cpm_core.presence.balanced_midpoint` picks the cut, `--write-card` stores it in the model card
(`decoding.presence_midpoint`). Nothing here reads a val file or a held-out background.

`--limit N` takes every k-th item so that at most N of each kind run (say so when quoting numbers). With
`--dump`, every result's last-stage heatmaps (float16) and scores go to an .npz for offline study.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared" / "data"
HAND_SETS = (DATA / "hand_more" / "val.json", DATA / "hand_pseudo" / "val.json")
BACKGROUNDS = DATA / "backgrounds" / "images"
# The backgrounds the hand recipes paste onto and use as negatives; the held-out row excludes them (a model
# trained on a scene would flatter itself there).
TRAIN_LIST = ROOT / "training" / "recipes" / "backgrounds_train.txt"


def every_kth(items: list, limit: int | None) -> list:
    if not limit or len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def hand_results(estimator, dataset: Path, limit: int | None = None, palm=None, min_joints: int = 3):
    """(name, PoseResult) for each labelled hand of `dataset`, cropped as `cpm eval` and turned as the app does."""
    from cpm_core.dataset.formats import read_dataset
    from cpm_core.preprocess import CropBox
    from cpm_core.upright import search_upright
    from training.data import iter_subjects

    margin = float((estimator.card.provenance or {}).get("crop_margin") or 1.6)
    ds = read_dataset(dataset)
    subjects = [(s.image, inst) for s in ds.samples for inst in s.instances if inst.num_labelled >= min_joints]
    keep = {id(inst) for _, inst in every_kth(subjects, limit)}
    for sample, frame, usable in iter_subjects(ds, min_joints):
        for inst in usable:
            if id(inst) not in keep:
                continue
            x, y, w, h = inst.bbox
            box = CropBox.around(x, y, x + w, y + h, margin)
            yield str(sample.image), search_upright(estimator, frame, box, palm=palm)


def background_images(folder: Path = BACKGROUNDS) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def background_results(follower, paths: list[Path], crops: int = 0, seed: int = 0):
    """(name, PoseResult) for hand-free images: the whole frame as `cpm infer` runs it, or with `crops` > 0 that
    many seeded square windows of a third of the shorter side each."""
    from cpm_core.preprocess import CropBox
    from cpm_core.sources import read_image

    rng = np.random.default_rng(seed)
    for path in paths:
        frame = read_image(path)
        h, w = frame.shape[:2]
        if not crops:
            follower.reset()
            yield path.name, follower.predict(frame)
            continue
        side = min(w, h) / 3.0
        for k in range(crops):
            cx, cy = rng.uniform(side / 2, w - side / 2), rng.uniform(side / 2, h - side / 2)
            follower.reset()
            yield f"{path.name}#{k}", follower.predict(frame, CropBox(cx, cy, side))


TRAIN_HANDS = ((DATA / "hand_more" / "train.json", 200), (DATA / "hand_pseudo" / "train.json", 100))


def trained_backgrounds(paths: list[Path]) -> set[str]:
    return {Path(line.split("#")[0].strip()).name for line in TRAIN_LIST.read_text().splitlines()
            if line.split("#")[0].strip()} & {q.name for q in paths}


def calibrate(est, follower, palm, write_card: str | None = None) -> float:
    """Measure the model's presence midpoint on training data (see the module docstring); print it and the
    fractions right on each side; with `write_card` (a model folder) store it in that card, atomically."""
    import json

    from cpm_core.atomic_io import atomic_write_text
    from cpm_core.presence import balanced_midpoint, presence_blobs

    def blobs(r) -> float:
        return presence_blobs(r.heatmaps, r.num_joints, r.target_sigma)

    hands = [blobs(r) for ds, k in TRAIN_HANDS for _, r in hand_results(est, ds, k, palm)]
    paths = background_images()
    trained = trained_backgrounds(paths)
    whole = [q for q in paths if q.name in trained]
    windows = [q for i, q in enumerate(paths) if q.name in trained and i % 5 == 0]
    free = [blobs(r) for _, r in background_results(follower, whole)]
    free += [blobs(r) for _, r in background_results(follower, windows, crops=2)]
    midpoint, above, below = balanced_midpoint(np.array(hands), np.array(free))
    print(f"calibration on training data: {len(hands)} hands, {len(free)} hand-free crops "
          f"({len(whole)} whole backgrounds + {2 * len(windows)} windows)")
    print(f"presence midpoint {midpoint:.2f} joint blobs: hands above {above:.3f}, hand-free below {below:.3f}")
    if write_card:
        card_path = Path(write_card) / "card.json"
        card = json.loads(card_path.read_text())
        card.setdefault("decoding", {})["presence_midpoint"] = round(float(midpoint), 3)
        atomic_write_text(card_path, json.dumps(card, indent=2) + "\n")
        print(f"written to {card_path} (decoding.presence_midpoint)")
    return midpoint


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model folder (default: the embedded hand model)")
    p.add_argument("--limit", type=int, default=None, help="at most N items of each kind (every k-th)")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--sets", default="backgrounds,hands",
                   help="comma-separated rows to run: backgrounds, crops (hand-free windows), hands")
    p.add_argument("--dump", default=None, help="write heatmaps and scores of every result to this .npz")
    p.add_argument("--calibrate", action="store_true",
                   help="measure the model's presence midpoint on training data only (no rows are run)")
    p.add_argument("--write-card", action="store_true", help="with --calibrate: store it in the model's card")
    p.add_argument("--runtime", choices=("float32", "app"), default="float32",
                   help="float32: TensorFlow float32 (the calibration's reference); app: what the app runs (the "
                        "packaged int8 graph when the model folder has one, else TensorFlow at auto precision)")
    args = p.parse_args(argv)

    from cpm_core.estimator import PoseEstimator
    from cpm_core.presence import TUNING_EVERY
    from cpm_core.upright import UprightFollower, default_palm_detector
    from cpm_core.weights import default_model_path

    model = args.model or str(default_model_path("hand"))
    est = PoseEstimator.from_path(model, **({"precision": "float32"} if args.runtime == "float32" else {}))
    print(f"runtime: {est.runtime.name} ({est.precision})")
    palm = default_palm_detector()
    follower = UprightFollower(est, palm=palm)
    if args.calibrate:
        calibrate(est, follower, palm, model if args.write_card else None)
        return 0
    t0 = time.perf_counter()
    groups: dict[str, list] = {}
    paths = background_images()
    trained_on = trained_backgrounds(paths)
    tuning = [q for i, q in enumerate(paths) if i % TUNING_EVERY == 0]
    held = [q for i, q in enumerate(paths) if i % TUNING_EVERY != 0 and q.name not in trained_on]
    seen = [q for i, q in enumerate(paths) if i % TUNING_EVERY != 0 and q.name in trained_on]
    sets = set(args.sets.split(","))
    if "backgrounds" in sets:
        groups["backgrounds (held out)"] = list(background_results(follower, every_kth(held, args.limit)))
        groups["backgrounds (tuning subset)"] = list(background_results(follower, every_kth(tuning, args.limit)))
        groups["backgrounds (recipes train on)"] = list(background_results(follower, every_kth(seen, args.limit)))
    if "crops" in sets:
        groups["background crops (held out)"] = list(background_results(
            follower, every_kth(held, args.limit and max(1, args.limit // 2)), crops=2))
    if "hands" in sets:
        for ds in HAND_SETS:
            groups[f"hands {ds.parent.name}/{ds.name}"] = list(hand_results(est, ds, args.limit, palm))
        groups["hands (both val sets)"] = [r for name, items in list(groups.items()) if name.startswith("hands")
                                           for _, r in items]
    wall = time.perf_counter() - t0

    print(f"model: {est.card.name} ({model}); threshold {args.threshold}; presence midpoint "
          f"{est.card.presence_midpoint:g} joint blobs; {wall:.0f} s"
          + (f"; at most {args.limit} per kind" if args.limit else ""))
    print(f"{'set':36s} {'n':>5s} {'pass':>6s} {'rate':>6s} {'p10':>6s} {'median':>6s} {'p90':>6s}  pass = ")
    for name, items in groups.items():
        s = np.array([(r[1] if isinstance(r, tuple) else r).presence for r in items])
        hand = name.startswith("hands")
        ok = (s > args.threshold) if hand else (s < args.threshold)
        q = np.percentile(s, [10, 50, 90]) if len(s) else [np.nan] * 3
        print(f"{name:36s} {len(s):5d} {int(ok.sum()):6d} {ok.mean() if len(s) else np.nan:6.3f} "
              f"{q[0]:6.3f} {q[1]:6.3f} {q[2]:6.3f}  {'above' if hand else 'below'} {args.threshold}")
    if args.dump:
        out = {}
        for k, (name, items) in enumerate(groups.items()):
            out[f"g{k}_name"] = np.array(name)
            pairs = [r for r in items if isinstance(r, tuple)]
            out[f"g{k}_items"] = np.array([n for n, _ in pairs])
            out[f"g{k}_heatmaps"] = np.stack([r.heatmaps for _, r in pairs]).astype(np.float16) if pairs else []
            out[f"g{k}_presence"] = np.array([r.presence for _, r in pairs])
        np.savez_compressed(args.dump, **out)
        print(f"dumped to {args.dump}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
