"""Inference and training-step speed of every preset, against this machine's own matmul ceiling.

Prints, for one run on one machine:
- inference: median and p90 latency at batch 1 through PoseEstimator's compiled path, frames/s, achieved GFLOP/s,
  and the ratio to TensorFlow's own matmul GFLOP/s *at the row's precision* (float32 or bfloat16), measured in
  the same run before, between and after the timed rows (best probe kept). numpy's float32 matmul is printed
  as a fact, not used as the ceiling: where the environment pins OpenBLAS to an older kernel (OPENBLAS_CORETYPE)
  it understates what TensorFlow's oneDNN reaches (250 vs 332 GFLOP/s on one machine, which showed rows at 122%
  of "the limit").
- training: the median time of one training step (forward, the loop's stage-wise L2 loss, gradients, the
  loop's Adam update) at batch 16 on random data, per preset, inside one tf.function after warm-up.
- ratios to a base preset (--vs, default hand-rt-128x3): each other preset's training step and model-only
  latency as a fraction of the base's (timed first and again last, mean of both: the machine drifts), from the
  same run (issue 16's targets for a new efficient hand preset: training step <= 25% and latency <= 40% of
  hand-rt-128x3's).

    python bench/inference.py [--presets hand-rt-128x3,hand-lite-128x3] [--seconds 8] [--train-seconds 10]
                              [--train-precisions float32,bfloat16] [--vs hand-rt-128x3]
                              [--runtimes hand-lite-128x3,resources/models/hand_default]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The project root ahead of bench/ (the script's folder, first on the path): `training` must be the package,
# not bench/training.py.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from machine import describe_machine  # noqa: E402

from cpm_core.estimator import PoseEstimator  # noqa: E402
from cpm_core.model_card import ModelCard  # noqa: E402
from cpm_core.network import build_cpm, cpu_has_fast_bfloat16  # noqa: E402
from cpm_core.spec import PRESETS, ModelSpec  # noqa: E402

TRAIN_TARGET, LATENCY_TARGET = 0.25, 0.40  # issue 16: a new efficient preset against hand-rt-128x3


def numpy_matmul_gflops(n: int = 2048, repeats: int = 15) -> float:
    """numpy's float32 matmul rate (best of `repeats`, like the TensorFlow probe): printed as a fact beside the
    ceilings, not used as one, since numpy's BLAS is not what runs the model."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / min(times) / 1e9


def tf_matmul_gflops(precision: str, n: int = 2048, budget_s: float = 1.5, max_repeats: int = 60) -> float:
    """TensorFlow's own matmul rate at `precision` ('float32' or 'bfloat16'): the ceiling a model computing in
    that precision can approach on this CPU, since the same library (oneDNN) runs the model's convolutions.

    `tf.linalg.matmul` of two n x n tensors inside a tf.function, one warm-up call, then the fastest of as many
    calls as fit in `budget_s` (3 to `max_repeats`): the best call, not the median, because a ceiling is what
    the CPU reaches when nothing else runs, and on a shared machine a median of a short probe falls with the
    neighbours' load (131 vs 61 GFLOP/s before and after one run here), which showed rows above 100%.
    Where one call takes over 0.1 s (few cores, or bfloat16 emulated on a CPU without native support) n is
    halved once, to 1024: many short calls give the best one a chance to fall in a quiet moment of a shared
    machine (a few 0.3 s calls of n = 2048 under load read 39 GFLOP/s where the model's convolutions reached 92;
    n = 512 read lower still, its calls too short to fill the cores). The rate is per FLOP either way."""
    import tensorflow as tf

    dtype = {"float32": tf.float32, "bfloat16": tf.bfloat16}[precision]
    while True:
        a = tf.cast(tf.random.stateless_normal((n, n), seed=(0, 1)), dtype)
        b = tf.cast(tf.random.stateless_normal((n, n), seed=(2, 3)), dtype)
        fn = tf.function(lambda x, y: tf.linalg.matmul(x, y))
        fn(a, b).numpy()  # trace
        t = time.perf_counter()
        fn(a, b).numpy()
        first = time.perf_counter() - t
        if first < 0.1 or n <= 1024:
            break
        n //= 2
    times = [first]
    while len(times) < max_repeats and (sum(times) < budget_s or len(times) < 3):
        t = time.perf_counter()
        fn(a, b).numpy()  # .numpy(): wait for the result, not only for the dispatch
        times.append(time.perf_counter() - t)
    return 2 * n**3 / min(times) / 1e9


def time_preset(name: str, seconds: float, precision: str) -> dict:
    """Model-only latency (batch 1, PoseEstimator's compiled graph) and the full predict of a 640x480 frame."""
    spec = PRESETS[name]
    model = build_cpm(spec)
    est = PoseEstimator(model, ModelCard.for_spec(spec), precision=precision)
    x = np.random.default_rng(0).integers(0, 255, (1, spec.input_size, spec.input_size, 3), dtype=np.uint8)
    for _ in range(2):
        est.run_raw(x)
    times = []
    start = time.perf_counter()
    while (time.perf_counter() - start < seconds or len(times) < 5) and len(times) < 500:
        t = time.perf_counter()
        est.run_raw(x)
        times.append(time.perf_counter() - t)
    med = float(np.median(times))
    frame = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    full = []
    for _ in range(min(len(times), 30)):
        t = time.perf_counter()
        est.predict(frame)
        full.append(time.perf_counter() - t)
    return {"preset": name, "precision": precision, "gflops": spec.gflops(), "params": model.count_params(),
            "median_ms": med * 1e3, "p90_ms": float(np.percentile(times, 90)) * 1e3, "fps": 1 / med,
            "predict_ms": float(np.median(full)) * 1e3, "achieved": spec.gflops() / med, "n": len(times)}


def make_train_step(spec: ModelSpec, precision: str = "float32", batch: int = 16, ema: float = 0.998, seed: int = 0):
    """One compiled training step of `spec` as training/loop.py runs it, on a fixed random batch.

    Same model build (`build_cpm(spec, precision)`: the loop does not add batch norm itself, a spec that asks
    for it gets it), same loss (`stage_l2`: every stage against the targets, masked channels, summed over
    stages), same optimizer (`make_optimizer`: Adam with the recipes' weight average, ema 0.998). Random data
    costs what real data costs once it is in memory; the input pipeline is not timed.
    Returns (step, model): `step()` runs one update and returns the loss as a tensor."""
    import tensorflow as tf

    from training.config import load_config
    from training.loop import make_optimizer, stage_l2

    cfg = load_config(None, ["train.optimizer=adam", f"train.ema={ema}", f"train.batch={batch}"])
    model = build_cpm(spec, precision)
    optimizer = make_optimizer(cfg, cfg.train.lr)
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(seed)
    s, h, c = spec.input_size, spec.heatmap_size, spec.channels
    images = tf.constant(rng.uniform(-0.5, 0.5, (batch, s, s, 3)).astype(np.float32))
    targets = tf.constant(rng.uniform(0.0, 1.0, (batch, h, h, c)).astype(np.float32))
    mask = tf.ones((batch, c), tf.float32)

    @tf.function
    def step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(stage_l2(model(images, training=True), targets, mask, batch))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step, model


def time_train_step(name: str, seconds: float, precision: str, batch: int = 16) -> dict:
    """Median wall time of one training step of preset `name`, after two warm-up steps (the first traces)."""
    spec = PRESETS[name]
    step, model = make_train_step(spec, precision, batch)
    for _ in range(2):
        step().numpy()
    times = []
    start = time.perf_counter()
    while (time.perf_counter() - start < seconds or len(times) < 3) and len(times) < 200:
        t = time.perf_counter()
        loss = float(step().numpy())
        times.append(time.perf_counter() - t)
    med = float(np.median(times))
    return {"preset": name, "precision": precision, "gflops": spec.gflops(), "params": model.count_params(),
            "batch": batch, "median_ms": med * 1e3, "p90_ms": float(np.percentile(times, 90)) * 1e3,
            "images_per_s": batch / med, "loss": loss, "n": len(times)}


def print_head(head: str) -> None:
    """A Markdown table's header line and its rule, the rule as wide as each column."""
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")


def ratio(x: float | None, base: float | None) -> str:
    return "–" if x is None or base is None else f"{x / base:.0%}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--seconds", type=float, default=8.0, help="inference timing budget per preset and precision")
    ap.add_argument("--precisions", default="float32,bfloat16", help="inference precisions")
    ap.add_argument("--train-precisions", default="float32", help="training-step precisions (add bfloat16)")
    ap.add_argument("--train-batch", type=int, default=16)
    ap.add_argument("--train-seconds", type=float, default=10.0, help="training-step timing budget per preset")
    ap.add_argument("--train-max-s", type=float, default=15.0,
                    help="skip the training step of presets estimated (3 x batch x GFLOPs over the float32 "
                         "matmul ceiling) to take longer than this many seconds a step; 0: time every preset")
    ap.add_argument("--vs", default="hand-rt-128x3", help="base preset for the ratio table ('' for none)")
    ap.add_argument("--runtimes", default="",
                    help="after the tables, the runtime table (bench/runtimes.py: TensorFlow, TFLite float32 and "
                         "int8, ONNX Runtime) for these presets and/or model folders, comma-separated ('' for none)")
    ap.add_argument("--runtime-seconds", type=float, default=5.0, help="timing budget per runtime")
    args = ap.parse_args()
    presets = [p for p in args.presets.split(",") if p]
    if args.vs and args.vs not in presets:
        presets.insert(0, args.vs)  # the ratios need the base measured in the same run
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        ap.error(f"unknown presets {unknown}; presets are: {', '.join(PRESETS)}")
    precisions = [p for p in args.precisions.split(",") if p]
    train_precisions = [p for p in args.train_precisions.split(",") if p]
    ceiling_precisions = sorted(set(precisions) | set(train_precisions), key=["float32", "bfloat16"].index)

    np_before = numpy_matmul_gflops()
    # The ceiling is probed before the rows, between presets and after the rows, and its best probe kept: on a
    # shared machine a neighbour's load comes and goes, and a probe that only ran in a busy moment read half of
    # what the rows reached in a quiet one (rows at 190% of it). Interleaved here, the model's best call stays
    # below the matmul's (hand-rt-128x3 float32 161 vs 188 GFLOP/s, bfloat16 403 vs 594).
    probes: dict[str, list[float]] = {p: [] for p in ceiling_precisions}

    def probe() -> None:
        for prec in ceiling_precisions:
            probes[prec].append(tf_matmul_gflops(prec, budget_s=0.5))

    probe()
    before = {p: probes[p][0] for p in ceiling_precisions}
    rows = []
    for p in presets:
        rows.extend(time_preset(p, args.seconds, prec) for prec in precisions)
        probe()
    train_rows, skipped = [], []
    for p in presets:
        est_s = 3 * args.train_batch * PRESETS[p].gflops() / before.get("float32", max(before.values()))
        if args.train_max_s and est_s > args.train_max_s and p != args.vs:
            skipped.append(f"{p} (~{est_s:.0f} s a step)")
            continue
        train_rows.extend(time_train_step(p, args.train_seconds, prec, args.train_batch) for prec in train_precisions)
        probe()
    # The base again, last: on a shared machine the speed drifts within a run, and the ratios are the targets;
    # they use the mean of the base's first and last measurement.
    base_again = {}
    if args.vs:
        base_again["latency"] = time_preset(args.vs, args.seconds, precisions[0])
        base_again["step"] = time_train_step(args.vs, args.train_seconds, train_precisions[0], args.train_batch)
    probe()
    np_after = numpy_matmul_gflops()
    ceiling = {p: max(probes[p]) for p in ceiling_precisions}

    print(f"machine: {describe_machine()}; numpy {np.__version__}; AMX bfloat16: {cpu_has_fast_bfloat16()}; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    print("ceilings (TensorFlow tf.linalg.matmul in a tf.function, best call, best of the probes before, "
          "between and after the rows): "
          + "; ".join(f"{p} {ceiling[p]:.0f} GFLOP/s ({len(probes[p])} probes: first {probes[p][0]:.0f}, "
                      f"median {np.median(probes[p]):.0f}, last {probes[p][-1]:.0f})"
                      for p in ceiling_precisions)
          + f"; for comparison numpy float32 matmul {max(np_before, np_after):.0f} GFLOP/s "
            f"(before {np_before:.0f}, after {np_after:.0f}; not the ceiling)")
    print("model-only latency = PoseEstimator's compiled tf.function at batch 1 (uint8 in, heatmaps out); "
          "predict = + crop of a 640x480 frame and decoding; vs ceiling = achieved GFLOP/s over TF's matmul "
          "at the row's precision")
    head = (f"| {'preset':<20} | precision | GFLOPs | params     | median ms | p90 ms | frames/s | predict ms | "
            "GFLOP/s | vs ceiling | runs |")
    print_head(head)
    for r in rows:
        print(f"| {r['preset']:<20} | {r['precision']:<9} | {r['gflops']:6.2f} | {r['params']:10,d} | "
              f"{r['median_ms']:9.1f} | {r['p90_ms']:6.1f} | {r['fps']:8.1f} | {r['predict_ms']:10.1f} | "
              f"{r['achieved']:7.0f} | {r['achieved'] / ceiling[r['precision']]:10.0%} | {r['n']:4d} |")

    print()
    print("training step = forward + stage L2 (training/loop.py stage_l2) + gradients + Adam with ema "
          "(make_optimizer) "
          f"in one tf.function, batch {args.train_batch}, random data, median after 2 warm-up steps; "
          "params = the model as training builds it")
    head = (f"| {'preset':<20} | precision | GFLOPs | params     | batch | step ms | p90 ms | images/s | "
            "GFLOP/s (3x fwd) | vs ceiling | loss     | steps |")
    print_head(head)
    for r in train_rows:
        achieved = 3 * r["gflops"] * r["batch"] / (r["median_ms"] / 1e3)
        print(f"| {r['preset']:<20} | {r['precision']:<9} | {r['gflops']:6.2f} | {r['params']:10,d} | "
              f"{r['batch']:5d} | {r['median_ms']:7.0f} | {r['p90_ms']:6.0f} | {r['images_per_s']:8.1f} | "
              f"{achieved:16.0f} | {achieved / ceiling[r['precision']]:10.0%} | {r['loss']:8.3g} | {r['n']:5d} |")
    if skipped:
        print(f"training step not timed (estimated over --train-max-s {args.train_max_s:g}): {', '.join(skipped)}")

    if args.vs:
        print()
        lat = {(r["preset"], r["precision"]): r["median_ms"] for r in rows}
        step = {(r["preset"], r["precision"]): r["median_ms"] for r in train_rows}
        tp, lp = train_precisions[0], precisions[0]
        print(f"vs {args.vs} (same run): training step ({tp}, batch {args.train_batch}) and model-only latency "
              f"({lp}, batch 1) as a fraction of {args.vs}'s; targets for a new efficient preset: "
              f"step <= {TRAIN_TARGET:.0%}, latency <= {LATENCY_TARGET:.0%}")
        first_step, first_lat = step[(args.vs, tp)], lat[(args.vs, lp)]
        last_step, last_lat = base_again["step"]["median_ms"], base_again["latency"]["median_ms"]
        base_step, base_lat = (first_step + last_step) / 2, (first_lat + last_lat) / 2
        print(f"base = mean of {args.vs} timed first and again last: step {first_step:.0f} and {last_step:.0f} ms, "
              f"latency {first_lat:.1f} and {last_lat:.1f} ms")
        head = (f"| {'preset':<20} | GFLOPs | params     | step ms | step vs base | latency ms | latency vs base | "
                "targets |")
        print(head)
        print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
        info = {r["preset"]: r for r in rows}
        for p in presets:
            s, la = step.get((p, tp)), lat.get((p, lp))
            met = (s is not None and base_step and la is not None and base_lat
                   and s / base_step <= TRAIN_TARGET and la / base_lat <= LATENCY_TARGET)
            verdict = "base" if p == args.vs else ("met" if met else "not met")
            if p == args.vs:
                s, la = base_step, base_lat
            print(f"| {p:<20} | {info[p]['gflops']:6.2f} | {info[p]['params']:10,d} | "
                  f"{'–' if s is None else f'{s:.0f}':>7} | {ratio(s, base_step):>12} | {la:10.1f} | "
                  f"{ratio(la, base_lat):>15} | {verdict:<7} |")
    if args.runtimes:
        from runtimes import format_table, runtime_table

        targets = [t for t in args.runtimes.split(",") if t]
        print("\nruntimes (model-only, batch 1; heatmaps against TensorFlow float32 on held-out real crops; "
              "PCK on hand_more/val for trained model folders)")
        rows = runtime_table(presets=[t for t in targets if t in PRESETS],
                             models=[t for t in targets if t not in PRESETS], seconds=args.runtime_seconds,
                             log=lambda *_: None)
        print(format_table(rows))


if __name__ == "__main__":
    main()
