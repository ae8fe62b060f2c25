"""Benchmark: training images/s of the full pipeline (tf.data augmentation + train step) against compute only
(the same train step fed one cached batch again and again), on the same model.

    PYTHONPATH=. python bench/training.py [--data PATH] [--preset hand-rt-128x3] [--batch 16] [--steps 30]

If the full pipeline reaches >= 95% of compute-only, the input pipeline keeps the model fed; below that,
the model waits for data (more parallel calls, a smaller cache, or a cheaper augmentation would help).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED_VAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "hand_pseudo" / "val.json"
TARGET = 0.95


def timed_steps(step, feed, steps: int, warmup: int) -> float:
    """images/s over `steps` calls after `warmup` calls (tracing, allocator, prefetch fill)."""
    for _ in range(warmup):
        step(feed()).numpy()
    t0 = time.perf_counter()
    for _ in range(steps):
        step(feed()).numpy()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED_VAL))
    parser.add_argument("--preset", default="hand-rt-128x3")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from cpm_core.network import build_cpm
    from training.config import AugmentConfig, RunConfig
    from training.data import build_cache, load_datasets, make_pipeline
    from training.loop import machine_note, make_optimizer, make_schedule, resolve_precision, stage_l2

    cfg = RunConfig()
    cfg.model.preset = args.preset
    cfg.train.batch = args.batch
    t0 = time.perf_counter()
    ds = load_datasets([args.data])
    spec = cfg.model_spec(ds.skeleton.num_joints)
    cache = build_cache(ds, spec.input_size, cfg.data.margin, cfg.data.cache_scale, cfg.data.min_joints)
    cache_s = time.perf_counter() - t0
    pipeline = make_pipeline(cache, spec.input_size, spec.stride, args.batch, AugmentConfig(), cfg.data.cache_scale)
    precision = resolve_precision(args.precision)
    model = build_cpm(spec, precision)
    optimizer = make_optimizer(cfg, make_schedule(cfg, 10_000))

    @tf.function
    def train_step(batch):
        images, targets, mask = batch
        with tf.GradientTape() as tape:
            per_stage = stage_l2(model(images, training=True), targets, mask, args.batch)
            loss = tf.reduce_sum(per_stage)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    it = iter(pipeline)
    fixed = next(it)
    # Alternate the two measurements so that load from other processes on a shared machine hits both alike.
    full_s = compute_s = 0.0
    rounds = 3
    for _ in range(rounds):
        compute_s += timed_steps(train_step, lambda: fixed, args.steps // rounds, args.warmup)
        full_s += timed_steps(train_step, lambda: next(it), args.steps // rounds, args.warmup)
    n = (args.steps // rounds) * rounds * args.batch
    full, compute = n / full_s, n / compute_s
    ratio = full / compute
    print(f"machine: {machine_note()}; GPU: {bool(tf.config.list_physical_devices('GPU'))}")
    print(f"model: {spec.name} ({spec.input_size}px, {spec.stages} stages, width x{spec.width:g}), "
          f"precision {precision}, batch {args.batch}; data: {args.data} ({len(cache)} subjects, "
          f"cached in {cache_s:.1f} s)")
    print(f"{'path':<36} {'images/s':>10}")
    print(f"{'compute only (one cached batch)':<36} {compute:>10.1f}")
    print(f"{'full pipeline (tf.data + step)':<36} {full:>10.1f}")
    print(f"{'full / compute':<36} {ratio:>10.1%}   target >= {TARGET:.0%}: {'met' if ratio >= TARGET else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
