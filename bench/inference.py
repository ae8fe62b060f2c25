"""Inference speed of every preset through PoseEstimator's compiled path, against this machine's matmul rate.

Prints one table: median and p90 latency at batch 1, frames/s, achieved GFLOP/s, and the ratio to numpy's
float32 matmul GFLOP/s measured in the same run (the practical ceiling on a CPU).

    python bench/inference.py [--presets hand-368x6,hand-rt-128x3] [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from machine import describe_machine  # noqa: E402

from cpm_core.estimator import PoseEstimator  # noqa: E402
from cpm_core.model_card import ModelCard  # noqa: E402
from cpm_core.network import build_cpm, cpu_has_fast_bfloat16  # noqa: E402
from cpm_core.spec import PRESETS  # noqa: E402


def matmul_gflops(n: int = 2048, repeats: int = 15) -> float:
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / np.median(times) / 1e9


def time_preset(name: str, seconds: float, precision: str) -> dict:
    spec = PRESETS[name]
    est = PoseEstimator(build_cpm(spec), ModelCard.for_spec(spec), precision=precision)
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
    return {"preset": name, "precision": precision, "gflops": spec.gflops(), "median_ms": med * 1e3,
            "p90_ms": float(np.percentile(times, 90)) * 1e3, "fps": 1 / med,
            "predict_ms": float(np.median(full)) * 1e3, "achieved": spec.gflops() / med, "n": len(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--seconds", type=float, default=8.0, help="timing budget per preset")
    ap.add_argument("--precisions", default="float32,bfloat16")
    args = ap.parse_args()
    before = matmul_gflops()
    rows = [time_preset(p, args.seconds, prec) for p in args.presets.split(",")
            for prec in args.precisions.split(",")]
    after = matmul_gflops()
    mm = (before + after) / 2
    print(f"machine: {describe_machine()}; numpy {np.__version__}; numpy float32 matmul {mm:.0f} GFLOP/s "
          f"(before {before:.0f}, after {after:.0f}); AMX bfloat16: {cpu_has_fast_bfloat16()}")
    print("model-only latency = PoseEstimator's compiled tf.function at batch 1 (uint8 in, heatmaps out); "
          "predict = + crop of a 640x480 frame and decoding")
    head = (f"| {'preset':<20} | precision | GFLOPs | median ms | p90 ms | frames/s | predict ms | GFLOP/s | "
            "vs matmul | runs |")
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for r in rows:
        print(f"| {r['preset']:<20} | {r['precision']:<9} | {r['gflops']:6.1f} | {r['median_ms']:9.1f} | "
              f"{r['p90_ms']:6.1f} | "
              f"{r['fps']:8.1f} | {r['predict_ms']:10.1f} | {r['achieved']:7.0f} | {r['achieved'] / mm:8.0%} | "
              f"{r['n']:4d} |")


if __name__ == "__main__":
    main()
