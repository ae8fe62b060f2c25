"""Thread budgets for a pipelined process (the desktop app): a fast model gets all cores but one, OpenCV one.

TensorFlow and OpenCV each default to one worker thread per core. In a pipeline (a capture thread decoding, a
model thread, a post-processing thread, the GUI painting) every one of them then splits its work over every
core, and each split waits for its slowest part, which another thread has just pre-empted. Measured on a
2-core machine with the default hand model (bench/pipeline.py): the model took 8.3 ms a frame with two
TensorFlow threads and 5.9 ms with one, and cropping 2.0 ms with OpenCV's two threads against 0.7 ms with one;
the GUI pipeline reached 70% of the bare model's rate with the defaults and about 80% with these budgets
(its bare rate rising too). The freed core runs decoding, post-processing and painting alongside the model.

That trade only pays while the model is fast. On a 2-core AVX2 machine without AMX (2026-11-30) the same model
took ~140 ms a frame on one thread and ~75 ms on two: the GUI's few milliseconds a frame then cost far less than
the second core is worth, and the one-thread budget halved the app's rate (6.3 against 10.2 frames/s,
bench/pipeline.py --threads app|default). So the budget looks at the model: its GFLOPs (from its card) over a
quick numpy matmul probe of this CPU estimate one core's time per frame, and a model slower than
`HEAVY_MODEL_MS` on one core gets every core.

TensorFlow fixes its thread pools when it first runs an op, so `configure_pipeline_threads` must be called
before any model is built; later it changes OpenCV only and says so. A model loaded later runs with the pools
chosen at start.
"""

from __future__ import annotations

import os

# One core's estimated time a frame from which the model gets every core: the default hand model estimates at
# 16 ms on the AMX machine (where all-but-one measured best) and 150 ms on the AVX2 one (where every core did);
# 40 ms leaves room for the probe, which read up to 2x low on a busy VM.
HEAVY_MODEL_MS = 40.0
CONV_EFFICIENCY = 0.8  # the default models' convolutions ran at 71-79% of numpy's matmul rate (bench/inference.py)
BF16_SPEEDUP = 2.0  # AMX bfloat16 over float32 for the default hand model (143 vs 67 frames/s, its card)


def _usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def matmul_gflops_per_core(n: int = 512, seconds: float = 0.06) -> float:
    """This CPU's float32 matmul rate per core from a short numpy probe: the best of as many products as fit in
    `seconds` after two warm-up ones (right after TensorFlow's import a single product read up to 2x low)."""
    import time

    import numpy as np

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    a @ a
    best, end = float("inf"), time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        a @ a
        t1 = time.perf_counter()
        best = min(best, t1 - t0)
        if t1 >= end:
            break
    return 2 * n**3 / max(best, 1e-9) / 1e9 / _usable_cores()


def estimate_model_ms(gflops: float, per_core_gflops: float, fast_bfloat16: bool = False) -> float:
    """One core's time per frame for a model of `gflops`, from the matmul rate (bfloat16 where AMX runs it)."""
    rate = per_core_gflops * CONV_EFFICIENCY * (BF16_SPEEDUP if fast_bfloat16 else 1.0)
    return 1e3 * gflops / max(rate, 1e-9)


def pipeline_thread_budget(cores: int | None = None, model_ms: float | None = None) -> dict[str, int]:
    """Threads for a pipelined process on `cores` cores (default: the cores this process may use). `model_ms`:
    the model's estimated time per frame on one core; at `HEAVY_MODEL_MS` or more it gets every core."""
    cores = max(1, int(cores if cores is not None else _usable_cores()))
    heavy = model_ms is not None and model_ms >= HEAVY_MODEL_MS
    model = cores if heavy else max(1, cores - 1)
    return {"cores": cores, "tf_intra_op": model, "tf_inter_op": 1 if cores <= 4 else 2,
            "opencv": 1 if cores <= 4 else max(1, cores // 4)}


def card_gflops(model_path: str | os.PathLike | None = None) -> float:
    """The forward GFLOPs of a model folder's card (default: the embedded hand model), read without building
    it. Weights without a card (the port's .pkl / checkpoints) count as the port's 368-pixel 6-stage model:
    all of the port's models, its 128-pixel student included, are far past `HEAVY_MODEL_MS` on a CPU core."""
    from pathlib import Path

    from cpm_core.model_card import ModelCard

    if model_path is None:
        from cpm_core.weights import default_model_path

        model_path = default_model_path("hand")
    path = Path(model_path)
    card = path / "card.json" if path.is_dir() else path.with_name("card.json")
    try:
        return ModelCard.read(card).spec.gflops()
    except (OSError, ValueError, KeyError, TypeError):
        from cpm_core.spec import get_preset

        return get_preset("hand-368x6").gflops()


def configure_pipeline_threads(cores: int | None = None, model_gflops: float | None = None
                               ) -> dict[str, int | bool | float | None]:
    """Apply `pipeline_thread_budget`, sized for a model of `model_gflops` (None: the all-but-one budget).
    Environment variables a user set (TF_NUM_INTRAOP_THREADS, TF_NUM_INTEROP_THREADS, CPM_OPENCV_THREADS) win.
    Returns the budget, the model's estimated one-core ms a frame and whether TensorFlow took it."""
    import cv2

    model_ms = None
    if model_gflops is not None:
        from cpm_core.network import cpu_has_fast_bfloat16

        model_ms = estimate_model_ms(model_gflops, matmul_gflops_per_core(), cpu_has_fast_bfloat16())
    budget: dict[str, int | bool | float | None] = dict(pipeline_thread_budget(cores, model_ms))
    budget["model_ms_one_core"] = None if model_ms is None else round(model_ms, 1)
    cv_threads = int(os.environ.get("CPM_OPENCV_THREADS", budget["opencv"]))
    cv2.setNumThreads(cv_threads)
    budget["opencv"] = cv_threads
    intra = int(os.environ.get("TF_NUM_INTRAOP_THREADS", budget["tf_intra_op"]))
    inter = int(os.environ.get("TF_NUM_INTEROP_THREADS", budget["tf_inter_op"]))
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
        budget["tf_applied"] = True
    except RuntimeError:  # TensorFlow already ran an op in this process: its pools stay as they are
        budget["tf_applied"] = (tf.config.threading.get_intra_op_parallelism_threads() == intra
                                and tf.config.threading.get_inter_op_parallelism_threads() == inter)
    budget["tf_intra_op"], budget["tf_inter_op"] = intra, inter
    return budget
