"""Look at what the net is trained on: a PNG grid of augmented training crops with the targets' keypoints drawn,
from a run config (a recipe), plus an optional images/s table of the tf.data pipeline alone.

    PYTHONPATH=. python bench/augment_preview.py training/recipes/hand_default.toml \
        --data ../shared/data/hand_more/train.json --all-new --out /tmp/augment_preview.png [--bench]

The keypoints are decoded from the Gaussian targets the loss sees (not from the labels before augmentation), so
a point that is off its joint in the picture is off in training too. `--all-new` switches on every copy-paste
and camera augmentation of issue #17 with the values below (on top of the config's own settings); `--set`
overrides anything (`--set augment.occluder=0.5`). `--bench` times the pipeline (batches of the config's
size, no model) with the config's augmentation, each new one alone, and all of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BACKGROUNDS = ROOT.parent / "shared" / "data" / "backgrounds" / "images"
# The issue #17 augmentations at the values suggested for the hand recipe.
ALL_NEW = {"paste_background": 0.5, "paste_subject": 0.2, "occluder": 0.3, "motion_blur": 0.15,
           "defocus_blur": 0.15, "jpeg": 0.3, "jpeg_quality": (20.0, 90.0), "hue": 8.0, "channel_gain": 0.1}
NEW_OFF = {"paste_background": 0.0, "paste_subject": 0.0, "occluder": 0.0, "motion_blur": 0.0,
           "defocus_blur": 0.0, "jpeg": 0.0, "hue": 0.0, "channel_gain": 0.0}


def peaks(targets, stride: int):
    """(B, J, 3) keypoints (x, y, peak value) in input pixels from (B, h, w, J+1) targets: the arg-max cell
    refined by the 3x3 centroid around it."""
    import numpy as np

    b, h, w, c = targets.shape
    out = np.zeros((b, c - 1, 3), np.float32)
    for i in range(b):
        for j in range(c - 1):
            hm = targets[i, :, :, j]
            y, x = np.unravel_index(np.argmax(hm), hm.shape)
            y0, y1, x0, x1 = max(y - 1, 0), min(y + 2, h), max(x - 1, 0), min(x + 2, w)
            win = hm[y0:y1, x0:x1]
            yy, xx = np.mgrid[y0:y1, x0:x1]
            tot = max(float(win.sum()), 1e-9)
            gx, gy = float((win * xx).sum() / tot), float((win * yy).sum() / tot)
            out[i, j] = ((gx + 0.5) * stride - 0.5, (gy + 0.5) * stride - 0.5, hm[y, x])
    return out


def preview(pipeline, skeleton, stride: int, count: int, cols: int, zoom: int, path: str) -> None:
    """Draw `count` crops (zoomed `zoom` times) with their target keypoints into a grid PNG at `path`."""
    import cv2
    import numpy as np

    from cpm_core.render import draw_pose, tile

    tiles = []
    for images, targets, _mask in pipeline:
        imgs = np.clip((images.numpy() + 0.5) * 256.0, 0, 255).astype(np.uint8)
        kps = peaks(targets.numpy(), stride)
        for img, kp in zip(imgs, kps):
            big = cv2.resize(img, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_LINEAR)
            kp = kp.copy()
            kp[:, :2] = (kp[:, :2] + 0.5) * zoom - 0.5
            kp[:, 2] = np.where(kp[:, 2] > 0.5, 1.0, 0.0)  # joints without a target (unlabelled) are not drawn
            tiles.append(draw_pose(big, kp, skeleton, threshold=0.5, thickness=1))
        if len(tiles) >= count:
            break
    cv2.imwrite(path, tile(tiles[:count], cols, gap=2, background=255))


def bench(cache, spec, cfg, batches: int, rounds: int = 2) -> list[tuple[str, float, float]]:
    """(name, images/s, CPU ms per image) of the pipeline alone (no model) per augmentation setting.

    The CPU time of this process per image is what a training run on the same cores has to give up, and it
    hardly depends on what else runs on a shared machine; images/s is the best of `rounds` timings of
    `batches` batches, the settings taken in turn each round (one live iterator at a time) so that load from
    other processes on a shared machine hits all alike; the first batches (buffer fill) are not timed."""
    from training.data import make_pipeline

    base = dataclasses.replace(cfg.augment, **NEW_OFF)
    settings = [("config's augmentation, new ones off", base)]
    for key in ("paste_background", "paste_subject", "occluder", "motion_blur", "defocus_blur", "jpeg"):
        settings.append((f"+ {key} = 1.0", dataclasses.replace(base, **{key: 1.0})))
    settings.append(("+ hue = 8, channel_gain = 0.1", dataclasses.replace(base, hue=8.0, channel_gain=0.1)))
    settings.append(("+ all new (preview values)", dataclasses.replace(base, **ALL_NEW)))
    pipelines = [make_pipeline(cache, spec.input_size, spec.stride, cfg.train.batch, aug, cfg.data.cache_scale,
                               cfg.train.sigma, seed=cfg.train.seed) for _name, aug in settings]
    best = [0.0] * len(settings)
    cpu = [float("inf")] * len(settings)
    for _ in range(rounds):
        for k, pipeline in enumerate(pipelines):
            it = iter(pipeline)  # one live iterator at a time: no other pipeline prefetches in the background
            for _ in range(3):
                next(it)
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(batches):
                next(it)
            n = batches * cfg.train.batch
            best[k] = max(best[k], n / (time.perf_counter() - t0))
            cpu[k] = min(cpu[k], 1000.0 * (time.process_time() - c0) / n)
            del it
    return [(name, rate, ms) for (name, _aug), rate, ms in zip(settings, best, cpu)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="a run config (TOML), e.g. training/recipes/hand_default.toml")
    parser.add_argument("--data", help="training dataset instead of the config's data.train")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="SECTION.KEY=VALUE")
    parser.add_argument("--all-new", action="store_true", help="switch on every issue #17 augmentation")
    parser.add_argument("--out", default="/tmp/augment_preview.png")
    parser.add_argument("--grid", type=int, default=6, help="grid side (grid x grid crops)")
    parser.add_argument("--zoom", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bench", action="store_true", help="also print the pipeline's images/s table")
    parser.add_argument("--bench-batches", type=int, default=10)
    args = parser.parse_args(argv)

    import tensorflow as tf

    from training.config import load_config
    from training.data import build_cache, load_datasets, make_pipeline

    tf.random.set_seed(args.seed)
    overrides = list(args.overrides)
    if args.all_new:  # before the user's --set, so those win
        new = [f"augment.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in ALL_NEW.items()]
        if not load_config(args.config).augment.backgrounds:
            new.append(f'augment.backgrounds=["{BACKGROUNDS}"]')
        overrides = new + overrides
    cfg = load_config(args.config, overrides)
    data = [str(Path(args.data).resolve())] if args.data else [cfg.resolve(p) for p in cfg.data.train]
    ds = load_datasets(data)
    spec = cfg.model_spec(ds.skeleton.num_joints)
    d = cfg.data
    t0 = time.perf_counter()
    cache = build_cache(ds, spec.input_size, d.margin, d.cache_scale, d.min_joints, None, d.orientation,
                        d.chirality, d.part_crops, cfg.augment.paste_mask, cfg.augment.mask_dilate,
                        cfg.augment.mask_feather)
    print(f"cache: {len(cache)} subjects at {cache.images.shape[1]} px in {time.perf_counter() - t0:.1f} s")
    pipeline = make_pipeline(cache, spec.input_size, spec.stride, cfg.train.batch, cfg.augment, d.cache_scale,
                             cfg.train.sigma, seed=args.seed)
    preview(pipeline, ds.skeleton, spec.stride, args.grid * args.grid, args.grid, args.zoom, args.out)
    print(f"wrote {args.out}")
    if args.bench:
        rows = bench(cache, spec, cfg, args.bench_batches)
        print(f"\n| pipeline ({spec.input_size} px, batch {cfg.train.batch}, {os.cpu_count()} cores) | images/s "
              "| CPU ms / image |")
        print("|---|---|---|")
        for name, rate, ms in rows:
            print(f"| {name} | {rate:.0f} | {ms:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
